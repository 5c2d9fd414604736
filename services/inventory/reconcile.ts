import type { Database } from "@trellis/platform/db";
import { type Check, defineCheck } from "@trellis/platform/reconcile";
import { type CheckWindow, endedOrder, mapLimit, type OrderLookup, windowOf } from "../shared/reconcile.ts";
import { release } from "./store.ts";

/**
 * The inventory service's reconciliation checks:
 *
 * - `reserved-for-ended-order`: stock RESERVED for an order that is CANCELLED or unknown. Repair: the release the
 *   saga's `inventory.release.v1` command performs ({@linkcode release}, under a message id of its own, so a second
 *   repair is a duplicate that changes nothing); its `inventory.released.v1` reply finds the order done.
 */
export function inventoryChecks(db: () => Database, order: OrderLookup, window: CheckWindow = {}): Check[] {
  const w = windowOf(window);
  return [
    defineCheck({
      name: "reserved-for-ended-order",
      description: "stock RESERVED for an order that is CANCELLED or unknown",
      async find(signal) {
        const rows = await db().query<{ order_id: string }>(
          `select order_id from reservations where status = 'RESERVED'
             and updated_at <= now() - $1::double precision * interval '1 millisecond'
             and updated_at >= now() - $2::double precision * interval '1 millisecond'
           order by updated_at limit $3`,
          [w.graceMs, w.lookbackMs, w.limit],
        );
        const seen = await mapLimit(rows, 8, async (r) => ({
          id: r.order_id,
          ended: await endedOrder(order, r.order_id, w.graceMs, signal),
        }));
        return seen.filter((s) => s.ended).map((s) => ({
          subject: s.id,
          detail: `stock RESERVED for an order ${s.ended}`,
        }));
      },
      async repair(drift, signal) {
        if (!(await endedOrder(order, drift.subject, w.graceMs, signal))) return "skipped";
        const [r] = await db().query<{ status: string }>("select status from reservations where order_id = $1", [
          drift.subject,
        ]);
        if (r?.status !== "RESERVED") return "skipped";
        const outcome = await release(db(), `reconcile:release:${drift.subject}`, drift.subject);
        return outcome === "released" ? "repaired" : "skipped";
      },
    }),
  ];
}
