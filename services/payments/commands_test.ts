import assert from "node:assert/strict";
import type { Database } from "@trellis/platform/db";
import { freshDatabase } from "@trellis/platform/db/testing";
import { OUTBOX_MIGRATIONS } from "@trellis/platform/outbox";
import { migrateService } from "../shared/infra.ts";
import { handleCharge, handleRefund } from "./commands.ts";
import { type PaymentProvider, simulatedProvider } from "./provider.ts";
import { getPayment } from "./store.ts";

/** A fresh Postgres database with the outbox's and the payments service's migrations applied. */
async function paymentsDatabase() {
  const fixture = await freshDatabase();
  await migrateService(fixture.db, "payments", [OUTBOX_MIGRATIONS]);
  return fixture;
}

/** A simulated provider that counts its charges and refunds. */
function countingProvider() {
  const inner = simulatedProvider();
  const calls = { charge: 0, refund: 0, refunded: 0 };
  const provider: PaymentProvider = {
    charge: (req, signal) => {
      calls.charge++;
      return inner.charge(req, signal);
    },
    refund: async (req, signal) => {
      calls.refund++;
      const r = await inner.refund(req, signal);
      if (r.refunded) calls.refunded++;
      return r;
    },
  };
  return { provider, calls };
}

/** The payment events published for an order, in order. */
async function published(db: Database, orderId: string): Promise<Record<string, unknown>[]> {
  const rows = await db.query<{ topic: string; payload: string }>(
    "select topic, payload from outbox where key = $1 order by seq",
    [orderId],
  );
  assert.ok(rows.every((r) => r.topic === "payments.events"));
  return rows.map((r) => JSON.parse(r.payload));
}

const charge = (orderId: string, paymentToken = "tok_visa") => ({
  type: "payments.charge.v1" as const,
  orderId,
  amountCents: 900,
  paymentToken,
});
const refund = (orderId: string) => ({ type: "payments.refund.v1" as const, orderId, reason: "deadline exceeded" });

Deno.test("handleRefund() refunds a succeeded charge at the provider, records REFUNDED and publishes payments.refunded.v1", async () => {
  await using fx = await paymentsDatabase();
  const { provider, calls } = countingProvider();
  assert.equal(await handleCharge(fx.db, provider, "m-1", charge("o-1")), "recorded");
  assert.equal(await handleRefund(fx.db, provider, "m-2", refund("o-1")), "refunded");
  const p = (await getPayment(fx.db, "o-1"))!;
  assert.equal(p.status, "REFUNDED");
  assert.equal(p.amountCents, 900);
  assert.equal(p.reason, "deadline exceeded");
  assert.match(p.refundRef, /^re_/);
  assert.deepEqual(await published(fx.db, "o-1"), [
    { type: "payments.succeeded.v1", orderId: "o-1", providerRef: p.providerRef },
    { type: "payments.refunded.v1", orderId: "o-1", amountCents: 900, refundRef: p.refundRef },
  ]);
  assert.deepEqual(calls, { charge: 1, refund: 1, refunded: 1 });
});

Deno.test("handleRefund() twice refunds once: a redelivery is a duplicate, a second command republishes the refund", async () => {
  await using fx = await paymentsDatabase();
  const { provider } = countingProvider();
  await handleCharge(fx.db, provider, "m-1", charge("o-1"));
  await handleRefund(fx.db, provider, "m-2", refund("o-1"));
  const refundRef = (await getPayment(fx.db, "o-1"))!.refundRef;
  assert.equal(await handleRefund(fx.db, provider, "m-2", refund("o-1")), "duplicate");
  assert.equal(await handleRefund(fx.db, provider, "m-3", refund("o-1")), "refunded");
  assert.equal((await getPayment(fx.db, "o-1"))!.refundRef, refundRef, "the provider answered the same refund");
  const events = (await published(fx.db, "o-1")).map((e) => e.type);
  assert.deepEqual(events, ["payments.succeeded.v1", "payments.refunded.v1", "payments.refunded.v1"]);
});

Deno.test("handleRefund() before any charge records VOIDED, and a charge arriving later is refused with reason voided", async () => {
  await using fx = await paymentsDatabase();
  const { provider, calls } = countingProvider();
  assert.equal(await handleRefund(fx.db, provider, "m-1", refund("o-1")), "voided");
  assert.deepEqual(await getPayment(fx.db, "o-1"), {
    orderId: "o-1",
    status: "VOIDED",
    amountCents: 0,
    providerRef: "",
    reason: "deadline exceeded",
    refundRef: "",
  });
  assert.equal(await handleCharge(fx.db, provider, "m-2", charge("o-1")), "voided");
  assert.equal(calls.charge, 0, "the provider was never asked to charge");
  assert.equal((await getPayment(fx.db, "o-1"))!.status, "VOIDED");
  assert.deepEqual(await published(fx.db, "o-1"), [
    { type: "payments.voided.v1", orderId: "o-1" },
    { type: "payments.failed.v1", orderId: "o-1", reason: "voided" },
  ]);
});

Deno.test("handleRefund() returns a charge the provider made but payments never recorded, and voids the order", async () => {
  await using fx = await paymentsDatabase();
  const { provider, calls } = countingProvider();
  // A charge attempt that reached the provider but whose record never committed (a crash, or a dead-lettered command).
  await provider.charge({ idempotencyKey: "o-1", amountCents: 900, token: "tok_visa" });
  assert.equal(await handleRefund(fx.db, provider, "m-1", refund("o-1")), "voided");
  const p = (await getPayment(fx.db, "o-1"))!;
  assert.equal(p.status, "VOIDED");
  assert.match(p.refundRef, /^re_/, "the provider's refund is on record");
  assert.equal(calls.refunded, 1);
  assert.equal(await handleCharge(fx.db, provider, "m-2", charge("o-1")), "voided");
  assert.equal(calls.charge, 1, "the replayed charge did not reach the provider");
});

Deno.test("handleCharge() that loses a race with the void refunds what the provider took", async () => {
  await using fx = await paymentsDatabase();
  const { provider, calls } = countingProvider();
  // The void commits while the charge is at the provider: the charge's record then finds VOIDED.
  const racing: PaymentProvider = {
    charge: async (req, signal) => {
      const result = await provider.charge(req, signal);
      assert.equal(await handleRefund(fx.db, simulatedProvider(), "m-void", refund(req.idempotencyKey)), "voided");
      return result;
    },
    refund: provider.refund,
  };
  assert.equal(await handleCharge(fx.db, racing, "m-1", charge("o-1")), "voided");
  assert.equal((await getPayment(fx.db, "o-1"))!.status, "VOIDED");
  assert.deepEqual(calls, { charge: 1, refund: 1, refunded: 1 });
});

Deno.test("handleRefund() of a declined charge leaves it FAILED and answers voided: nothing was taken", async () => {
  await using fx = await paymentsDatabase();
  const { provider, calls } = countingProvider();
  await handleCharge(fx.db, provider, "m-1", charge("o-1", "tok_decline"));
  assert.equal(await handleRefund(fx.db, provider, "m-2", refund("o-1")), "voided");
  assert.equal((await getPayment(fx.db, "o-1"))!.status, "FAILED");
  assert.equal(calls.refunded, 0);
  assert.deepEqual((await published(fx.db, "o-1")).map((e) => e.type), ["payments.failed.v1", "payments.voided.v1"]);
});

Deno.test("handleRefund() refunds by the recorded charge reference when the provider has forgotten the charge", async () => {
  await using fx = await paymentsDatabase();
  await handleCharge(fx.db, simulatedProvider(), "m-1", charge("o-1"));
  // A fresh simulator stands for the payments process restarted: only the recorded reference identifies the charge.
  assert.equal(await handleRefund(fx.db, simulatedProvider(), "m-2", refund("o-1")), "refunded");
  assert.equal((await getPayment(fx.db, "o-1"))!.status, "REFUNDED");
});

Deno.test("handleCharge() of an order already REFUNDED does not charge again and republishes the refund", async () => {
  await using fx = await paymentsDatabase();
  const { provider } = countingProvider();
  await handleCharge(fx.db, provider, "m-1", charge("o-1"));
  await handleRefund(fx.db, provider, "m-2", refund("o-1"));
  assert.equal(await handleCharge(fx.db, provider, "m-3", charge("o-1")), "recorded");
  assert.equal((await getPayment(fx.db, "o-1"))!.status, "REFUNDED");
  assert.equal((await published(fx.db, "o-1")).at(-1)?.type, "payments.refunded.v1");
});
