import assert from "node:assert/strict";
import { UnavailableError } from "../../platform/grpc/errors.ts";
import { freePorts } from "../../tests/support/ports.ts";
import { loadConfig } from "./config.ts";
import { consume, tokensFor } from "./wiring.ts";
import { currentContext } from "../../platform/context/context.ts";
import { createLogger } from "../../platform/log/logger.ts";
import { createMemoryBroker } from "../../platform/messaging/memory.ts";
import { Service } from "../../platform/service/service.ts";

const quiet = createLogger("test", { level: "error", write: () => {} });

Deno.test("tokensFor() reports an unreachable auth service as UnavailableError, which the edge answers with 503", async () => {
  const [dead] = freePorts(1);
  const config = loadConfig({ AUTH_URL: `http://127.0.0.1:${dead}` });
  await assert.rejects(tokensFor(config, "gateway", "orders")(), UnavailableError);
});

Deno.test("consume() absorbs brief failures in place and dead-letters a handler that outlives its timeout", async () => {
  const bus = createMemoryBroker({ redelivery: { initialDelayMs: 1, maxDelayMs: 5 }, logger: quiet });
  const svc = new Service({ name: "wiring-test", log: quiet });
  const calls: { id: string; attempt: number; aborted?: boolean }[] = [];
  consume(svc, () => Promise.resolve(bus), "wiring.events", async (msg) => {
    calls.push({ id: msg.id, attempt: msg.attempt });
    if (msg.id === "flaky" && calls.filter((c) => c.id === "flaky").length < 3) throw new Error("brief fault");
    if (msg.id === "stuck") {
      const signal = currentContext()!.signal;
      await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
      calls.at(-1)!.aborted = true;
      throw signal.reason;
    }
  }, { group: "wiring", timeoutMs: 30, attempts: 3 });
  const dead = Promise.withResolvers<string>();
  await bus.subscribe("wiring.events.dlq", (msg) => dead.resolve(msg.headers["dlq-error"] ?? ""), { group: "ops" });
  await svc.start();
  try {
    await bus.publish("wiring.events", { id: "flaky", payload: new Uint8Array([1]) });
    await bus.publish("wiring.events", { id: "stuck", payload: new Uint8Array([2]) });
    const reason = await dead.promise;
    assert.match(reason, /not handled within 30 ms/);
    // Three in-place calls in one delivery: attempt stays 1, nothing redelivered.
    assert.deepEqual(calls.filter((c) => c.id === "flaky").map((c) => c.attempt), [1, 1, 1]);
    // 5 deliveries x 3 calls, each cut off by the timeout, then the DLQ.
    const stuck = calls.filter((c) => c.id === "stuck");
    assert.equal(stuck.length, 15);
    assert.deepEqual([...new Set(stuck.map((c) => c.attempt))], [1, 2, 3, 4, 5]);
    assert.ok(stuck.every((c) => c.aborted), "every stuck call saw its signal abort");
  } finally {
    await svc.stop();
    await bus.close();
  }
});
