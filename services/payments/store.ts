import type { Database, Tx } from "@trellis/platform/db";
import { claimOnce } from "@trellis/platform/outbox";
import { type PaymentEvent, publishEvent, Topics } from "../shared/events.ts";
import type { ChargeResult, RefundResult } from "./provider.ts";
import * as queries from "./queries.ts";

/** A payment as recorded: one per order. */
export interface Payment {
  orderId: string;
  /**
   * SUCCEEDED or FAILED as the charge answered; REFUNDED once a succeeded charge was given back; VOIDED when the
   * order was cancelled before any charge was recorded (a charge arriving later is refused).
   */
  status: "SUCCEEDED" | "FAILED" | "REFUNDED" | "VOIDED";
  amountCents: number;
  providerRef: string;
  /** Why a charge failed, or why the order was refunded or voided. */
  reason: string;
  /** The provider's reference of the refund, when money went back. */
  refundRef: string;
}

// The check constraint of migrations/payments holds status to Payment["status"].
function fromRow(r: queries.GetPaymentRow): Payment {
  return {
    orderId: r.order_id,
    status: r.status as Payment["status"],
    amountCents: Number(r.amount_cents),
    providerRef: r.provider_ref,
    reason: r.reason,
    refundRef: r.refund_ref,
  };
}

/**
 * The payment recorded for an order, or `undefined`.
 *
 * @example
 * ```ts ignore
 * (await getPayment(db, orderId))?.status; // "SUCCEEDED"
 * ```
 */
export async function getPayment(db: Database, orderId: string): Promise<Payment | undefined> {
  const r = await queries.getPayment(db, { orderId });
  return r && fromRow(r);
}

/** What a payment's state answers to the saga: a voided order's charge is refused as failed, reason "voided". */
function outcomeOf(p: Payment): PaymentEvent {
  switch (p.status) {
    case "SUCCEEDED":
      return { type: "payments.succeeded.v1", orderId: p.orderId, providerRef: p.providerRef };
    case "FAILED":
      return { type: "payments.failed.v1", orderId: p.orderId, reason: p.reason };
    case "VOIDED":
      return { type: "payments.failed.v1", orderId: p.orderId, reason: "voided" };
    case "REFUNDED":
      return { type: "payments.refunded.v1", orderId: p.orderId, amountCents: p.amountCents, refundRef: p.refundRef };
  }
}

async function publish(tx: Tx, event: PaymentEvent): Promise<void> {
  await publishEvent(tx, { topic: Topics.paymentEvents, key: event.orderId, payload: event });
}

/**
 * Records a provider's answer for an order and publishes it, once per message id. A second answer for the same
 * order (a redelivered command) republishes the recorded outcome instead of a new one; an order already VOIDED keeps
 * that state and the charge is answered failed with reason "voided" (`"voided"`: the caller must refund whatever
 * the provider took).
 *
 * @example
 * ```ts ignore
 * await recordCharge(db, msg.id, orderId, 900, { ok: true, ref: "ch_1" }); // "recorded"
 * ```
 */
export async function recordCharge(
  db: Database,
  messageId: string,
  orderId: string,
  amountCents: number,
  result: ChargeResult,
): Promise<"recorded" | "duplicate" | "voided"> {
  return await db.transaction(async (tx) => {
    if (!(await claimOnce(tx, "payments", messageId))) return "duplicate";
    await queries.insertCharge(tx, {
      orderId,
      status: result.ok ? "SUCCEEDED" : "FAILED",
      amountCents,
      providerRef: result.ok ? result.ref : "",
      reason: result.ok ? "" : result.reason,
    });
    // The row inserted above, or the one a first answer inserted.
    const payment = fromRow((await queries.getPayment(tx, { orderId }))!);
    await publish(tx, outcomeOf(payment));
    return payment.status === "VOIDED" ? "voided" : "recorded";
  });
}

/**
 * Records the refund of a cancelled order and publishes the outcome, once per message id: a SUCCEEDED charge becomes
 * REFUNDED (`payments.refunded.v1`); an order with no payment yet is VOIDED (`payments.voided.v1`), so that a charge
 * command arriving later is refused; a FAILED charge took nothing and stays as it is (`payments.voided.v1`); an order
 * already REFUNDED or VOIDED republishes that outcome. `result` is the provider's answer to the refund, made before.
 *
 * @example
 * ```ts ignore
 * await recordRefund(db, msg.id, orderId, "deadline exceeded while CHARGING", { refunded: true, ref: "re_1" });
 * ```
 */
export async function recordRefund(
  db: Database,
  messageId: string,
  orderId: string,
  reason: string,
  result: RefundResult,
): Promise<"refunded" | "voided" | "duplicate"> {
  return await db.transaction(async (tx) => {
    if (!(await claimOnce(tx, "payments", messageId))) return "duplicate";
    const r = await queries.lockPayment(tx, { orderId });
    const refundRef = result.refunded ? result.ref : "";
    if (!r) {
      // A charge recorded concurrently (only possible outside per-key ordering) makes this insert fail on the primary
      // key; the command is then retried and finds the charge.
      await queries.insertVoided(tx, { orderId, reason, refundRef });
      await publish(tx, { type: "payments.voided.v1", orderId });
      return "voided";
    }
    const payment = fromRow(r);
    if (payment.status === "SUCCEEDED") {
      if (!result.refunded) {
        throw new Error(
          `Cannot record the refund of order ${orderId} as REFUNDED: the provider found no charge to refund for ${payment.providerRef}`,
        );
      }
      await queries.markRefunded(tx, { orderId, reason, refundRef });
      await publish(tx, { type: "payments.refunded.v1", orderId, amountCents: payment.amountCents, refundRef });
      return "refunded";
    }
    if (payment.status === "REFUNDED") {
      await publish(tx, outcomeOf(payment));
      return "refunded";
    }
    await publish(tx, { type: "payments.voided.v1", orderId });
    return "voided";
  });
}
