import assert from "node:assert/strict";
import { consume, relay } from "./wiring.ts";
import { currentContext } from "@trellis/platform/context";
import { createLogger } from "@trellis/platform/log";
import { createMemoryBroker } from "@trellis/platform/messaging";
import { Service } from "@trellis/platform/service";
import { migrate } from "@trellis/platform/db";
import { freshDatabase } from "@trellis/platform/db/testing";
import { enqueue, OUTBOX_MIGRATIONS } from "@trellis/platform/outbox";
import { waitUntil } from "@trellis/platform/testing";

const quiet = createLogger("test", { level: "error", write: () => {} });

Deno.test("consume() absorbs brief failures in place and dead-letters a handler that outlives its timeout", async () => {
  const bus = createMemoryBroker({ redelivery: { baseDelayMs: 1, maxDelayMs: 5 }, logger: quiet });
  const svc = new Service({ name: "wiring-test", logger: quiet });
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
  }, { group: "wiring", timeoutMs: 30, maxAttempts: 3 });
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

Deno.test("relay() publishes through the routed bus and reports the backlog and a failing topic on /metrics", async () => {
  await using f = await freshDatabase();
  await migrate(f.db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
  const bus = createMemoryBroker({ logger: quiet });
  const svc = new Service({ name: "wiring-relay-test", logger: quiet });
  relay(
    svc,
    () => f.db,
    (topic) => topic === "dead.events" ? Promise.reject(new Error("broker down")) : Promise.resolve(bus),
  );
  const delivered: string[] = [];
  await bus.subscribe("live.events", (msg) => void delivered.push(msg.id), { group: "wiring" });
  await svc.start();
  const metrics = async () => await (await fetch(`${svc.url}/metrics`)).text();
  const liveId = crypto.randomUUID();
  try {
    await f.db.transaction(async (tx) => {
      for (const key of ["a", "b", "a"]) await enqueue(tx, { topic: "dead.events", key, payload: {} });
      await enqueue(tx, { topic: "live.events", id: liveId, payload: {} });
    });
    await waitUntil(() => delivered.length === 1, 5_000, "the live topic's message behind the dead one");
    assert.deepEqual(delivered, [liveId]);
    await waitUntil(async () => /^outbox_backlog\{[^}]*\} 3$/m.test(await metrics()), 5_000, "a backlog of 3");
    const text = await metrics();
    assert.match(text, /^outbox_topic_failing\{[^}]*topic="dead.events"[^}]*\} 1$/m);
    assert.doesNotMatch(text, /topic="live.events"/);
    assert.match(text, /^outbox_database_reachable\{[^}]*\} 1$/m);
  } finally {
    await svc.stop();
    await bus.close();
  }
});
