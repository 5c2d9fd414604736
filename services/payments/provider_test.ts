import assert from "node:assert/strict";
import type { Publisher } from "@trellis/platform/messaging";
import { deadLetter } from "@trellis/platform/messaging/middleware";
import { ProviderUnavailableError, readLedger, simulatedProvider } from "./provider.ts";
import { within } from "@trellis/platform/testing";

Deno.test("simulatedProvider() charges a good token and declines the test decline token", async () => {
  const p = simulatedProvider();
  const ok = await p.charge({ idempotencyKey: "a", amountCents: 100, token: "tok_visa" });
  assert.ok(ok.ok && ok.ref.startsWith("ch_"));
  assert.deepEqual(await p.charge({ idempotencyKey: "b", amountCents: 100, token: "tok_decline" }), {
    ok: false,
    reason: "card declined",
  });
});

Deno.test("simulatedProvider() fails transiently at its failure rate and answers a repeated key the same way", async () => {
  const rolls = [0.1, 0.9];
  const p = simulatedProvider({ failureRate: 0.5, random: () => rolls.shift()! });
  await assert.rejects(p.charge({ idempotencyKey: "k", amountCents: 5, token: "t" }), ProviderUnavailableError);
  const first = await p.charge({ idempotencyKey: "k", amountCents: 5, token: "t" });
  assert.deepEqual(await p.charge({ idempotencyKey: "k", amountCents: 5, token: "t" }), first);
});

Deno.test("simulatedProvider() rejects a failure rate outside [0, 1]", () => {
  assert.throws(() => simulatedProvider({ failureRate: 2 }), RangeError);
});

Deno.test("simulatedProvider() latency is cancelled by the caller's signal", async () => {
  const p = simulatedProvider({ latencyMs: 10_000 });
  const c = new AbortController();
  const pending = p.charge({ idempotencyKey: "x", amountCents: 1, token: "t" }, c.signal);
  c.abort(new Error("caller gave up"));
  await assert.rejects(within(pending, 1_000, "the cancelled charge to reject"), /caller gave up/);
});

Deno.test("simulatedProvider() refunds a charge once, answering a repeated refund with the same reference", async () => {
  const p = simulatedProvider();
  await p.charge({ idempotencyKey: "o-1", amountCents: 100, token: "tok_visa" });
  const first = await p.refund({ idempotencyKey: "o-1" });
  assert.ok(first.refunded && first.ref.startsWith("re_"));
  assert.deepEqual(await p.refund({ idempotencyKey: "o-1" }), first);
});

Deno.test("simulatedProvider() has nothing to refund for an unknown key or a declined charge, unless given a charge reference", async () => {
  const p = simulatedProvider();
  assert.deepEqual(await p.refund({ idempotencyKey: "never-charged" }), { refunded: false });
  await p.charge({ idempotencyKey: "declined", amountCents: 100, token: "tok_decline" });
  assert.deepEqual(await p.refund({ idempotencyKey: "declined" }), { refunded: false });
  const byRef = await p.refund({ idempotencyKey: "charged-before-a-restart", chargeRef: "ch_1" });
  assert.equal(byRef.refunded, true);
});

Deno.test("simulatedProvider() fails refunds transiently at its failure rate", async () => {
  const rolls = [0.1, 0.9];
  const p = simulatedProvider({ failureRate: 0.5, random: () => rolls.shift()! });
  await assert.rejects(p.refund({ idempotencyKey: "k", chargeRef: "ch_1" }), ProviderUnavailableError);
  assert.equal((await p.refund({ idempotencyKey: "k", chargeRef: "ch_1" })).refunded, true);
});

Deno.test("a command failing with ProviderUnavailableError is delivered again, never dead-lettered, however often it fails", async () => {
  const parked: string[] = [];
  // Only publish() is used by deadLetter(); it records what would have been parked.
  const publisher = { publish: (topic: string) => Promise.resolve(void parked.push(topic)) } as unknown as Publisher;
  const outage = new ProviderUnavailableError();
  const handler = deadLetter("payments.commands", { publisher, maxAttempts: 5 })(() => Promise.reject(outage));
  for (const attempt of [1, 5, 6, 50]) {
    const msg = { id: "m-1", key: "o-1", headers: {}, payload: new Uint8Array(), attempt, timestamp: 0 };
    await assert.rejects(Promise.resolve(handler(msg)), (err) => err === outage);
  }
  assert.deepEqual(parked, []);
});

Deno.test("simulatedProvider() with a ledger remembers its charges and refunds across a restart, as a real provider does", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const ledgerPath = `${dir}/nested/ledger.jsonl`;
    const first = simulatedProvider({ ledgerPath });
    const charged = await first.charge({ idempotencyKey: "order-1", amountCents: 900, token: "tok_visa" });
    await first.charge({ idempotencyKey: "order-2", amountCents: 900, token: "tok_decline" });
    // A crash mid-write leaves a partial last line; it never reached a caller, so it is not on the statement.
    await Deno.writeTextFile(ledgerPath, '{"op":"charge","key":"order-3"', { append: true });

    const restarted = simulatedProvider({ ledgerPath });
    assert.deepEqual(
      await restarted.charge({ idempotencyKey: "order-1", amountCents: 900, token: "tok_visa" }),
      charged,
      "the same key answers the same charge instead of charging again",
    );
    assert.deepEqual(await restarted.charge({ idempotencyKey: "order-2", amountCents: 900, token: "tok_visa" }), {
      ok: false,
      reason: "card declined",
    });
    const refund = await restarted.refund({ idempotencyKey: "order-1" });
    assert.ok(refund.refunded);
    assert.deepEqual(await simulatedProvider({ ledgerPath }).refund({ idempotencyKey: "order-1" }), refund);
    assert.deepEqual(readLedger(ledgerPath).map((e) => [e.op, e.key]), [
      ["charge", "order-1"],
      ["decline", "order-2"],
      ["refund", "order-1"],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
