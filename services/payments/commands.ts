import type { Database } from "@trellis/platform/db";
import type { Event } from "../shared/events.ts";
import type { ChargeResult, PaymentProvider } from "./provider.ts";
import { getPayment, recordCharge, recordRefund } from "./store.ts";

/**
 * Handles `payments.charge.v1`: charges through the provider (a transient failure throws, so the command is
 * redelivered and retried with the same idempotency key, the order id) and records the outcome. An order already
 * VOIDED is not charged: the command is answered failed, reason "voided", and anything the provider holds under the
 * order's key (a charge made by an earlier attempt whose record lost the race with the void) is refunded. That
 * refund runs on every delivery that meets VOIDED, so a refund failing after the record commits is retried too.
 *
 * @example
 * ```ts ignore
 * await handleCharge(db, provider, msg.id, { type: "payments.charge.v1", orderId, amountCents: 900, paymentToken });
 * ```
 */
export async function handleCharge(
  db: Database,
  provider: PaymentProvider,
  messageId: string,
  cmd: Event<"payments.charge.v1">,
  signal?: AbortSignal,
): Promise<"recorded" | "duplicate" | "voided"> {
  const voidedBefore = (await getPayment(db, cmd.orderId))?.status === "VOIDED";
  const result: ChargeResult = voidedBefore ? { ok: false, reason: "voided" } : await provider.charge(
    { idempotencyKey: cmd.orderId, amountCents: cmd.amountCents, token: cmd.paymentToken },
    signal,
  );
  const outcome = await recordCharge(db, messageId, cmd.orderId, cmd.amountCents, result);
  if (voidedBefore || outcome === "voided") {
    await provider.refund({ idempotencyKey: cmd.orderId }, signal);
    return "voided";
  }
  return outcome;
}

/**
 * Handles `payments.refund.v1` for a cancelled order: refunds through the provider whatever it charged under the
 * order's key (by the recorded charge's reference when there is one), then records REFUNDED, or VOIDED when no
 * charge was recorded yet so that a charge arriving later is refused. Idempotent: the provider answers a repeated
 * refund with the first one, and the record is made once per message id and once per order.
 *
 * @example
 * ```ts ignore
 * await handleRefund(db, provider, msg.id, { type: "payments.refund.v1", orderId, reason: "deadline exceeded" });
 * ```
 */
export async function handleRefund(
  db: Database,
  provider: PaymentProvider,
  messageId: string,
  cmd: Event<"payments.refund.v1">,
  signal?: AbortSignal,
): Promise<"refunded" | "voided" | "duplicate"> {
  const payment = await getPayment(db, cmd.orderId);
  const chargeRef = payment?.status === "SUCCEEDED" || payment?.status === "REFUNDED" ? payment.providerRef : undefined;
  const result = await provider.refund({ idempotencyKey: cmd.orderId, chargeRef }, signal);
  return await recordRefund(db, messageId, cmd.orderId, cmd.reason, result);
}
