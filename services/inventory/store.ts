import type { Database } from "@trellis/platform/db";
import { claimOnce } from "@trellis/platform/outbox";
import { type InventoryEvent, type Item, publishEvent, Topics } from "../shared/events.ts";

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
  const rows = await db.query<{ sku: string; name: string; price_cents: string; stock: number }>(
    skus.length === 0
      ? "select sku, name, price_cents, stock from products order by sku"
      : "select sku, name, price_cents, stock from products where sku = any($1::text[]) order by sku",
    skus.length === 0 ? [] : [skus],
  );
  return rows.map((r) => ({ sku: r.sku, name: r.name, priceCents: Number(r.price_cents), available: r.stock }));
}

/** The reservation made for an order, or `undefined`. */
export async function getReservation(db: Database, orderId: string): Promise<Reservation | undefined> {
  const [r] = await db.query<{ order_id: string; status: Reservation["status"]; items: Item[] }>(
    "select order_id, status, items from reservations where order_id = $1",
    [orderId],
  );
  if (!r) return undefined;
  return { orderId: r.order_id, status: r.status, items: r.items };
}

async function reply(tx: Parameters<Parameters<Database["transaction"]>[0]>[0], event: InventoryEvent) {
  await publishEvent(tx, { topic: Topics.inventoryEvents, key: event.orderId, payload: event });
}

/**
 * Reserves every item of an order or none: rows are locked in SKU order (so concurrent reservations cannot
 * deadlock), stock is decremented and its version bumped, and the outcome is published, all in one transaction and
 * once per message id.
 */
export async function reserve(
  db: Database,
  messageId: string,
  orderId: string,
  items: Item[],
): Promise<"reserved" | "rejected" | "duplicate"> {
  return await db.transaction(async (tx) => {
    if (!(await claimOnce(tx, "inventory", messageId))) return "duplicate";
    const [existing] = await tx.query("select status from reservations where order_id = $1", [orderId]);
    if (existing) return "duplicate";
    const wanted = new Map<string, number>();
    for (const it of items) wanted.set(it.sku, (wanted.get(it.sku) ?? 0) + it.quantity);
    const skus = [...wanted.keys()].sort();
    const rows = await tx.query<{ sku: string; stock: number }>(
      "select sku, stock from products where sku = any($1::text[]) order by sku for update",
      [skus],
    );
    const stock = new Map(rows.map((r) => [r.sku, r.stock]));
    const short = skus.find((s) => (stock.get(s) ?? 0) < wanted.get(s)!);
    if (short !== undefined) {
      const reason = stock.has(short) ? `out of stock: ${short}` : `unknown product: ${short}`;
      await tx.query(
        "insert into reservations (order_id, status, items, reason) values ($1, 'REJECTED', $2::jsonb, $3)",
        [orderId, items, reason],
      );
      await reply(tx, { type: "inventory.rejected.v1", orderId, reason });
      return "rejected";
    }
    for (const sku of skus) {
      await tx.query("update products set stock = stock - $2, version = version + 1 where sku = $1", [
        sku,
        wanted.get(sku),
      ]);
    }
    await tx.query("insert into reservations (order_id, status, items) values ($1, 'RESERVED', $2::jsonb)", [
      orderId,
      items,
    ]);
    await reply(tx, { type: "inventory.reserved.v1", orderId });
    return "reserved";
  });
}

/** Returns a reserved order's stock; releasing twice (or an unknown order) changes nothing but still answers. */
export async function release(db: Database, messageId: string, orderId: string): Promise<"released" | "duplicate"> {
  return await db.transaction(async (tx) => {
    if (!(await claimOnce(tx, "inventory", messageId))) return "duplicate";
    const [r] = await tx.query<{ status: string; items: Item[] }>(
      "select status, items from reservations where order_id = $1 for update",
      [orderId],
    );
    if (r?.status === "RESERVED") {
      const items: Item[] = r.items;
      for (const it of [...items].sort((a, b) => a.sku.localeCompare(b.sku))) {
        await tx.query("update products set stock = stock + $2, version = version + 1 where sku = $1", [
          it.sku,
          it.quantity,
        ]);
      }
      await tx.query("update reservations set status = 'RELEASED', updated_at = now() where order_id = $1", [orderId]);
    }
    await reply(tx, { type: "inventory.released.v1", orderId });
    return "released";
  });
}
