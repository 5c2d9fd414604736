import * as assert from "node:assert/strict";
import { runWithContext } from "../context/mod.ts";
import { createLogger } from "../log/mod.ts";
import { createMemoryBroker, type Message } from "../messaging/mod.ts";
import { chainHandlers, deadLetter } from "../messaging/middleware/mod.ts";
import { waitUntil } from "../testing/mod.ts";
import { CircuitBreaker, CircuitOpenError } from "./circuit_breaker.ts";
import { resiliencePolicy } from "./policy.ts";
import { RetryBudget } from "./retry_budget.ts";
import { resilientHandler } from "./resilient_handler.ts";

const msg = (id: string): Message => ({ id, headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 });
const noSleep = () => Promise.resolve();

Deno.test("resilientHandler() retries a failing handler in place only as far as the budget allows", async () => {
  const budget = new RetryBudget({ ratio: 1, minPerSec: 0 });
  let calls = 0;
  const handler = resilientHandler(resiliencePolicy({ retry: { maxAttempts: 3 }, budget, sleep: noSleep }))(() => {
    if (++calls < 3) throw new Error("ledger down");
  });
  await assert.rejects(Promise.resolve(handler(msg("m-1"))), /ledger down/);
  assert.equal(calls, 2, "one call earns one retry, though maxAttempts would allow two");
  await handler(msg("m-2"));
  assert.equal(calls, 3, "the second message's first call succeeds");
});

Deno.test("resilientHandler() fails fast with a transient CircuitOpenError while the circuit is open", async () => {
  const breaker = new CircuitBreaker("ledger", { minimumCalls: 2 });
  let calls = 0;
  const handler = resilientHandler(resiliencePolicy({ retry: { maxAttempts: 1 }, breaker }))(() => {
    calls++;
    throw new Error("ledger down");
  });
  for (const id of ["m-1", "m-2"]) await Promise.resolve(handler(msg(id))).catch(() => {});
  const err = await Promise.resolve(
    runWithContext({ requestId: "r-1", signal: new AbortController().signal }, () => handler(msg("m-3"))),
  ).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof CircuitOpenError);
  assert.equal(err.transient, true);
  assert.equal(calls, 2);
});

Deno.test("a message refused by an open circuit is redelivered, never dead-lettered", async () => {
  const bus = createMemoryBroker({
    logger: createLogger("messaging", { write: () => {} }),
    redelivery: { baseDelayMs: 1 },
  });
  try {
    const breaker = new CircuitBreaker("ledger", { minimumCalls: 1, openMs: 60_000 });
    breaker.record(breaker.acquire(), "failure");
    const parked: string[] = [];
    await bus.subscribe("payments.events.dlq", (m) => void parked.push(m.id), { group: "watch" });
    let refusals = 0;
    const handler = chainHandlers(
      deadLetter("payments.events", { publisher: bus, maxAttempts: 2 }),
      (next) => async (m) => {
        try {
          await next(m);
        } catch (err) {
          if (err instanceof CircuitOpenError) refusals++;
          throw err;
        }
      },
      resilientHandler(resiliencePolicy({ breaker })),
    )(() => {});
    await bus.subscribe("payments.events", handler, { group: "ledger" });
    await bus.publish("payments.events", { payload: new Uint8Array() });
    await waitUntil(() => refusals >= 4, 5_000, "four deliveries refused by the open circuit");
    assert.deepEqual(parked, []);
  } finally {
    await bus.close();
  }
});
