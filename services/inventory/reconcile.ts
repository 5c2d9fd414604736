import type { Database, Queryable } from "@trellis/platform/db";
import { type Check, defineCheck } from "@trellis/platform/reconcile";
import {
  type CheckWindow,
  endedOrder,
  type OrderLookup,
  rowsOfEndedOrders,
  ScanCursor,
  windowOf,
} from "../shared/reconcile.ts";
import * as queries from "./queries.ts";
import { release } from "./store.ts";

/** Units RESERVED per SKU (only SKUs in `skus`, or all). */
async function reservedBySku(db: Queryable, skus?: string[]): Promise<Map<string, number>> {
  const rows = await queries.reservedBySku(db, { skus: skus ?? null });
  return new Map(rows.map((r) => [r.sku, Number(r.reserved)]));
}

/**
 * The inventory service's reconciliation checks:
 *
 * - `reserved-for-ended-order`: stock RESERVED for an order that is CANCELLED or unknown. Repair: the release the
 *   saga's `inventory.release.v1` command performs ({@linkcode release}, under a message id of its own, so a second
 *   repair is a duplicate that changes nothing); its `inventory.released.v1` reply finds the order done.
 * - `stock-disagrees-with-reservations`: a product whose free `stock` is not its counted `units_held` less the
 *   quantities RESERVED for it. Repair: `stock` set to that difference (version bumped, as every stock write does),
 *   under the product's row lock, which a reservation in flight holds until it commits, so the sum read after it
 *   is current. A count that would go below zero (more reserved than held) is reported and fails its repair.
 */
export function inventoryChecks(db: () => Database, order: OrderLookup, window: CheckWindow = {}): Check[] {
  const w = windowOf(window);
  const cursor = new ScanCursor();
  return [
    defineCheck({
      name: "reserved-for-ended-order",
      description: "stock RESERVED for an order that is CANCELLED or unknown",
      async find(signal) {
        const found = await rowsOfEndedOrders(
          (page) => queries.settledReservations(db(), page),
          cursor,
          w,
          order,
          signal,
        );
        return found.map(({ row, ended }) => ({
          subject: row.order_id,
          detail: `stock RESERVED for an order ${ended}`,
        }));
      },
      async repair(drift, signal) {
        if (!(await endedOrder(order, drift.subject, w.graceMs, signal))) return "skipped";
        const r = await queries.getReservation(db(), { orderId: drift.subject });
        if (r?.status !== "RESERVED") return "skipped";
        const outcome = await release(db(), `reconcile:release:${drift.subject}`, drift.subject);
        return outcome === "released" ? "repaired" : "skipped";
      },
    }),
    defineCheck({
      name: "stock-disagrees-with-reservations",
      description: "products whose free stock is not their counted units less the units RESERVED",
      async find() {
        const products = await queries.listCountedProducts(db());
        const reserved = await reservedBySku(db());
        return products.filter((p) => p.stock !== p.units_held - (reserved.get(p.sku) ?? 0)).map((p) => {
          const r = reserved.get(p.sku) ?? 0;
          return {
            subject: p.sku,
            detail: `stock is ${p.stock}, but ${p.units_held} held less ${r} reserved is ${p.units_held - r}`,
          };
        });
      },
      async repair(drift) {
        return await db().transaction(async (tx) => {
          const p = await queries.lockProductCount(tx, { sku: drift.subject });
          if (!p || p.units_held === null) return "skipped";
          const want = p.units_held - ((await reservedBySku(tx, [drift.subject])).get(drift.subject) ?? 0);
          if (p.stock === want) return "skipped";
          if (want < 0) {
            throw new Error(`${-want} more units are RESERVED than held: an operator must restock or cancel orders`);
          }
          await queries.setStock(tx, { sku: drift.subject, stock: want });
          return "repaired";
        });
      },
    }),
  ];
}
