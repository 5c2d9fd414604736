import type { Database } from "@trellis/platform/db";
import { type Check, defineCheck } from "@trellis/platform/reconcile";
import {
  type CheckWindow,
  endedOrder,
  type OrderLookup,
  rowsOfEndedOrders,
  ScanCursor,
  windowOf,
} from "../shared/reconcile.ts";
import { handleRefund } from "./commands.ts";
import type { PaymentProvider } from "./provider.ts";
import * as queries from "./queries.ts";
import { getPayment } from "./store.ts";

/**
 * The payments service's reconciliation checks:
 *
 * - `charge-for-ended-order`: a SUCCEEDED charge for an order that is CANCELLED or unknown. Repair: the refund the
 *   saga's `payments.refund.v1` command performs ({@linkcode handleRefund}: the provider refunds under the order id
 *   as idempotency key, the payment becomes REFUNDED and `payments.refunded.v1` is published), under a message id of
 *   its own so a second repair is a duplicate.
 */
export function paymentsChecks(
  db: () => Database,
  provider: PaymentProvider,
  order: OrderLookup,
  window: CheckWindow = {},
): Check[] {
  const w = windowOf(window);
  const cursor = new ScanCursor();
  return [
    defineCheck({
      name: "charge-for-ended-order",
      description: "SUCCEEDED charges for an order that is CANCELLED or unknown",
      async find(signal) {
        const found = await rowsOfEndedOrders((page) => queries.settledCharges(db(), page), cursor, w, order, signal);
        return found.map(({ row, ended }) => ({
          subject: row.order_id,
          detail: `charge of ${Number(row.amount_cents)} cents SUCCEEDED for an order ${ended}`,
          ended,
        }));
      },
      async repair(drift, signal) {
        if (!(await endedOrder(order, drift.subject, w.graceMs, signal))) return "skipped";
        if ((await getPayment(db(), drift.subject))?.status !== "SUCCEEDED") return "skipped";
        const outcome = await handleRefund(db(), provider, `reconcile:refund:${drift.subject}`, {
          type: "payments.refund.v1",
          orderId: drift.subject,
          reason: `reconciliation: order ${drift.ended}`,
        }, signal);
        return outcome === "refunded" ? "repaired" : "skipped";
      },
    }),
  ];
}
