import type { Database } from "../../platform/db/db.ts";
import { claimOnce } from "../../platform/outbox/outbox.ts";
import { type PaymentEvent, publishEvent, Topics } from "../shared/events.ts";
import type { ChargeResult } from "./provider.ts";

export interface Payment {
  orderId: string;
  status: "SUCCEEDED" | "FAILED";
  amountCents: number;
  providerRef: string;
  reason: string;
}

/** The payment recorded for an order, or `undefined`. */
export async function getPayment(db: Database, orderId: string): Promise<Payment | undefined> {
  const [r] = await db.query<
    { order_id: string; status: Payment["status"]; amount_cents: string; provider_ref: string; reason: string }
  >("select order_id, status, amount_cents, provider_ref, reason from payments where order_id = $1", [orderId]);
  return r && {
    orderId: r.order_id,
    status: r.status,
    amountCents: Number(r.amount_cents),
    providerRef: r.provider_ref,
    reason: r.reason,
  };
}

/**
 * Records a provider's answer for an order and publishes it, once per message id. A second answer for the same
 * order (a redelivered command) republishes the recorded outcome instead of a new one.
 */
export async function recordCharge(
  db: Database,
  messageId: string,
  orderId: string,
  amountCents: number,
  result: ChargeResult,
): Promise<"recorded" | "duplicate"> {
  return await db.transaction(async (tx) => {
    if (!(await claimOnce(tx, "payments", messageId))) return "duplicate";
    await tx.query(
      `insert into payments (order_id, status, amount_cents, provider_ref, reason) values ($1, $2, $3, $4, $5)
       on conflict (order_id) do nothing`,
      [
        orderId,
        result.ok ? "SUCCEEDED" : "FAILED",
        amountCents,
        result.ok ? result.ref : "",
        result.ok ? "" : result.reason,
      ],
    );
    const [r] = await tx.query<{ status: string; provider_ref: string; reason: string }>(
      "select status, provider_ref, reason from payments where order_id = $1",
      [orderId],
    );
    const event: PaymentEvent = r.status === "SUCCEEDED"
      ? { type: "payments.succeeded.v1", orderId, providerRef: r.provider_ref }
      : { type: "payments.failed.v1", orderId, reason: r.reason };
    await publishEvent(tx, { topic: Topics.paymentEvents, key: orderId, payload: event });
    return "recorded";
  });
}
