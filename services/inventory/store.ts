import {
  type ConflictRetryOptions,
  type Database,
  retryOnConflict,
  type Tx,
  VersionConflictError,
} from "@trellis/platform/db";
import { claimOnce } from "@trellis/platform/outbox";
import { type InventoryEvent, type Item, publishEvent, Topics } from "../shared/events.ts";
import * as queries from "./queries.ts";

export interface Product {
  sku: string;
  name: string;
  priceCents: number;
  available: number;
}

export interface Reservation {
  orderId: string;
  status: "RESERVED" | "RELEASED" | "REJECTED";
  items: Item[];
}

/** Products by SKU (all when `skus` is empty), sorted by SKU. */
export async function listProducts(db: Database, skus: readonly string[] = []): Promise<Product[]> {
  const rows = skus.length === 0
    ? await queries.listAllProducts(db)
    : await queries.listProducts(db, { skus: [...skus] });
  return rows.map((r) => ({ sku: r.sku, name: r.name, priceCents: Number(r.price_cents), available: r.stock }));
}

/** The reservation made for an order, or `undefined`. */
export async function getReservation(db: Database, orderId: string): Promise<Reservation | undefined> {
  const r = await queries.getReservation(db, { orderId });
  if (!r) return undefined;
  // The check constraint of migrations/inventory holds status to these; items is the array reserve() stored.
  return { orderId: r.order_id, status: r.status as Reservation["status"], items: r.items as Item[] };
}

async function reply(tx: Tx, event: InventoryEvent) {
  await publishEvent(tx, { topic: Topics.inventoryEvents, key: event.orderId, payload: event });
}

/**
 * How often a reservation re-reads and re-decides after another one changed its products first. Each lost race means
 * another order took stock, so the attempts needed grow with the orders contending for one product at once; the waits
 * (jittered, 2 ms doubling to 50 ms) spread the retries out. After the last attempt the transaction rolls back and the
 * command, unanswered, is redelivered.
 */
export const RESERVE_CONFLICT_RETRY: ConflictRetryOptions = { maxAttempts: 30, baseDelayMs: 2, maxDelayMs: 50 };

/**
 * Reserves every item of an order or none, once per message id, with optimistic locking: the products are read
 * without locks, the decision is made on that read, and each product is written with a compare-and-set on its
 * `version`. When another reservation changed one of them in between, the attempt's savepoint undoes what it wrote
 * and the order is re-read and re-decided (out of stock now, perhaps). The outcome is published in the same
 * transaction as the claim of the message id. Products are written in SKU order, so two orders waiting on each
 * other's uncommitted rows cannot deadlock.
 *
 * Rejects with a `VersionConflictError` when every attempt lost its race (the command is then redelivered).
 */
export async function reserve(
  db: Database,
  messageId: string,
  orderId: string,
  items: Item[],
  retry: ConflictRetryOptions = RESERVE_CONFLICT_RETRY,
): Promise<"reserved" | "rejected" | "duplicate"> {
  return await db.transaction(async (tx) => {
    if (!(await claimOnce(tx, "inventory", messageId))) return "duplicate";
    if (await queries.getReservation(tx, { orderId })) return "duplicate";
    const wanted = new Map<string, number>();
    for (const it of items) wanted.set(it.sku, (wanted.get(it.sku) ?? 0) + it.quantity);
    const skus = [...wanted.keys()].sort();
    return await retryOnConflict(() => tx.savepoint((sp) => reserveOnce(sp, orderId, items, skus, wanted)), retry);
  });
}

async function reserveOnce(
  tx: Tx,
  orderId: string,
  items: Item[],
  skus: string[],
  wanted: Map<string, number>,
): Promise<"reserved" | "rejected"> {
  const rows = await queries.readStock(tx, { skus });
  const products = new Map(rows.map((r) => [r.sku, r]));
  const short = skus.find((s) => (products.get(s)?.stock ?? 0) < wanted.get(s)!);
  if (short !== undefined) {
    const reason = products.has(short) ? `out of stock: ${short}` : `unknown product: ${short}`;
    await queries.insertReservation(tx, { orderId, status: "REJECTED", items, reason });
    await reply(tx, { type: "inventory.rejected.v1", orderId, reason });
    return "rejected";
  }
  for (const sku of skus) {
    const { stock, version } = products.get(sku)!;
    const written = await queries.setStockIfVersion(tx, { sku, stock: stock - wanted.get(sku)!, version });
    if (!written) throw new VersionConflictError("products", { sku }, version);
  }
  await queries.insertReservation(tx, { orderId, status: "RESERVED", items, reason: "" });
  await reply(tx, { type: "inventory.reserved.v1", orderId });
  return "reserved";
}

/** Returns a reserved order's stock; releasing twice (or an unknown order) changes nothing but still answers. */
export async function release(db: Database, messageId: string, orderId: string): Promise<"released" | "duplicate"> {
  return await db.transaction(async (tx) => {
    if (!(await claimOnce(tx, "inventory", messageId))) return "duplicate";
    const r = await queries.lockReservation(tx, { orderId });
    if (r?.status === "RESERVED") {
      const items = r.items as Item[];
      for (const it of [...items].sort((a, b) => a.sku.localeCompare(b.sku))) {
        await queries.restock(tx, { sku: it.sku, quantity: it.quantity });
      }
      await queries.markReleased(tx, { orderId });
    }
    await reply(tx, { type: "inventory.released.v1", orderId });
    return "released";
  });
}
