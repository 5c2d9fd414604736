import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { currentContext } from "../context/mod.ts";
import { createLogger } from "../log/mod.ts";
import { Service } from "../service/mod.ts";
import { waitUntil, within } from "../testing/mod.ts";
import { createJetStreamPubSub } from "./adapters/jetstream.ts";
import { createMemoryBroker, memoryFeatures } from "./adapters/memory.ts";
import type { Message, MessageHandler, OutgoingMessage, PubSub } from "./message.ts";
import type { HandlerMiddleware } from "./middleware/mod.ts";
import { MessageRouter } from "./router.ts";

const quiet = createLogger("test", { level: "error", write: () => {} });
const unique = (name: string) => `${name}.${crypto.randomUUID().slice(0, 8)}`;
const bytes = (n: number) => new Uint8Array([n]);

/**
 * A bus that hands each subscribed handler to the test, which calls it as the adapter would, and records publishes:
 * for what the router does with a handler's outcome, independent of any adapter's redelivery.
 */
function fakeBus(redelivery: boolean) {
  const handlers = new Map<string, MessageHandler>();
  const published: { topic: string; msg: OutgoingMessage }[] = [];
  let closed = 0;
  const bus: PubSub = {
    features: { ...memoryFeatures, redelivery },
    publish: (topic, msg) => Promise.resolve(void published.push({ topic, msg })),
    subscribe: (topic, handler) => {
      handlers.set(topic, handler);
      return Promise.resolve({ close: () => Promise.resolve(void closed++) });
    },
    close: () => Promise.resolve(),
  };
  const deliver = (topic: string, msg: Partial<Message> = {}) =>
    Promise.resolve(
      handlers.get(topic)!({ id: "m-1", headers: {}, payload: bytes(1), attempt: 1, timestamp: 0, ...msg }),
    );
  return { bus, published, deliver, closed: () => closed };
}

const mark = (calls: string[], name: string): HandlerMiddleware => (next) => async (msg) => {
  calls.push(name);
  await next(msg);
};

Deno.test("MessageRouter runs the router's middleware, then the subscription's, inside retry and timeout, once per call", async () => {
  const { bus, deliver } = fakeBus(true);
  const calls: string[] = [];
  let failures = 2;
  const router = new MessageRouter({
    bus,
    logger: quiet,
    retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
    middleware: [mark(calls, "router a"), mark(calls, "router b")],
  }).subscribe("t", () => {
    calls.push(`handler (signal ${currentContext()?.signal.aborted === false ? "live" : "missing"})`);
    if (failures-- > 0) throw new Error("brief fault");
  }, { middleware: [mark(calls, "route")] });
  await router.start();
  await deliver("t");
  const once = ["router a", "router b", "route", "handler (signal live)"];
  assert.deepEqual(calls, [...once, ...once, ...once]);
  await router.close();
});

Deno.test("MessageRouter dead-letters after 5 deliveries where the bus redelivers, and never where it does not", async () => {
  const fail: MessageHandler = () => {
    throw new Error("poison");
  };
  const redelivering = fakeBus(true);
  const atMostOnce = fakeBus(false);
  const routers = [redelivering, atMostOnce].map((b) =>
    new MessageRouter({ bus: b.bus, logger: quiet, retry: { maxAttempts: 1 } }).subscribe("t", fail)
  );
  for (const r of routers) await r.start();
  try {
    await assert.rejects(redelivering.deliver("t", { attempt: 4 }), /poison/);
    assert.equal(redelivering.published.length, 0);
    await redelivering.deliver("t", { attempt: 5 });
    assert.deepEqual(redelivering.published.map((p) => [p.topic, p.msg.headers?.["dlq-attempts"]]), [["t.dlq", "5"]]);
    // An at-most-once bus logs and drops a failure; parking it would publish what the broker never promised to keep.
    await assert.rejects(atMostOnce.deliver("t", { attempt: 5 }), /poison/);
    await assert.rejects(atMostOnce.deliver("t", { attempt: 50 }), /poison/);
    assert.deepEqual(atMostOnce.published, []);
  } finally {
    for (const r of routers) await r.close();
  }
});

Deno.test("MessageRouter lets a subscription override the router's timeout, retry and dead-letter options", async () => {
  const { bus, deliver, published } = fakeBus(true);
  const calls: Record<string, number> = { slow: 0, strict: 0 };
  const router = new MessageRouter({ bus, logger: quiet, timeoutMs: 10_000, retry: { maxAttempts: 3, baseDelayMs: 1 } })
    .subscribe("slow", async () => {
      calls.slow++;
      const signal = currentContext()!.signal;
      await within(
        new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true })),
        5_000,
        "the abort at the subscription's 20 ms timeout",
      );
      throw signal.reason;
    }, { timeoutMs: 20, retry: { maxAttempts: 1 } })
    .subscribe("strict", () => {
      calls.strict++;
      throw new Error("no");
    }, { deadLetter: false })
    .subscribe("early", () => {
      throw new Error("parked");
    }, { retry: { maxAttempts: 1 }, deadLetter: { maxAttempts: 2, topic: (t) => `${t}.poison` } });
  await router.start();
  try {
    await within(
      assert.rejects(deliver("slow"), /not handled within 20 ms/),
      2_000,
      "the subscription's 20 ms timeout, not the router's 10 s",
    );
    assert.equal(calls.slow, 1);
    await assert.rejects(deliver("strict", { attempt: 9 }), /no/);
    assert.equal(calls.strict, 3);
    await deliver("early", { attempt: 2 });
    assert.deepEqual(published.map((p) => p.topic), ["early.poison"]);
  } finally {
    await router.close();
  }
});

Deno.test("MessageRouter refuses bad options when a subscription is declared, and subscriptions after start", async () => {
  const { bus } = fakeBus(true);
  const router = new MessageRouter({ bus, logger: quiet });
  assert.throws(() => router.subscribe("t", () => {}, { timeoutMs: 0 }), RangeError);
  assert.throws(() => router.subscribe("t", () => {}, { retry: { maxAttempts: 0 } }), RangeError);
  assert.throws(() => router.subscribe("t", () => {}, { deadLetter: { maxAttempts: 1.5 } }), RangeError);
  assert.throws(() => new MessageRouter({ logger: quiet }).subscribe("t", () => {}), TypeError);
  assert.throws(() => new MessageRouter({ drainMs: -1 }), RangeError);
  await router.start();
  assert.throws(() => router.subscribe("t", () => {}), TypeError);
  await assert.rejects(router.start(), TypeError);
  await router.close();
  assert.equal(router.state, "closed");
});

Deno.test("MessageRouter.close() waits for the handler in flight, holds what arrives meanwhile for the group's next member", async () => {
  const bus = createMemoryBroker({ logger: quiet, redelivery: { baseDelayMs: 1, maxDelayMs: 5 } });
  const topic = unique("drain");
  const gate = Promise.withResolvers<void>();
  const first: string[] = [];
  const started = Promise.withResolvers<void>();
  const held: string[] = [];
  const logger = createLogger("test", {
    level: "debug",
    write: (line) => {
      const { msg, messageId } = JSON.parse(line);
      if (msg.includes("held for redelivery")) held.push(messageId);
    },
  });
  const router = new MessageRouter({ bus, logger }).subscribe(topic, async (msg) => {
    first.push(msg.id);
    started.resolve();
    await within(gate.promise, 5_000, "the test to open the gate");
  }, { group: "g", concurrency: 2 });
  await router.start();
  try {
    await bus.publish(topic, { id: "in-flight", key: "a", payload: bytes(1) });
    await within(started.promise, 2_000, "the first message in flight");
    let closed = false;
    const closing = router.close().then(() => closed = true);
    assert.equal(router.state, "draining");
    await bus.publish(topic, { id: "arrived-while-draining", key: "b", payload: bytes(2) });
    // Delivered to the router (concurrency 2) but held: its handler does not run.
    await waitUntil(() => held.length === 1, 2_000, "the message delivered while draining held");
    assert.deepEqual(held, ["arrived-while-draining"]);
    assert.deepEqual(first, ["in-flight"]);
    assert.equal(closed, false, "close() waits for the handler in flight");
    gate.resolve();
    await within(closing, 2_000, "close() once the handler finished");
    assert.equal(router.state, "closed");

    const second: string[] = [];
    const next = new MessageRouter({ bus, logger: quiet }).subscribe(topic, (msg) => void second.push(msg.id), {
      group: "g",
    });
    await next.start();
    await waitUntil(() => second.length > 0, 2_000, "the held message at the group's next member");
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.deepEqual(second, ["arrived-while-draining"]);
    await next.close();
  } finally {
    gate.resolve();
    await router.close();
    await bus.close();
  }
});

Deno.test("MessageRouter.close() cancels a handler still running at drainMs, transiently, so it is not dead-lettered", async () => {
  const bus = createMemoryBroker({ logger: quiet, redelivery: { baseDelayMs: 1, maxDelayMs: 5 } });
  const topic = unique("cancel");
  const started = Promise.withResolvers<void>();
  const reasons: unknown[] = [];
  const router = new MessageRouter({ bus, logger: quiet, drainMs: 30, timeoutMs: 10_000 })
    .subscribe(topic, async () => {
      started.resolve();
      const signal = currentContext()!.signal;
      await within(
        new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true })),
        5_000,
        "the abort at drainMs",
      );
      reasons.push(signal.reason);
      throw signal.reason;
    }, { group: "g", deadLetter: { maxAttempts: 1 } });
  const dlq: string[] = [];
  await bus.subscribe(`${topic}.dlq`, (msg) => void dlq.push(msg.id), { group: "ops" });
  await router.start();
  try {
    await bus.publish(topic, { id: "stuck", payload: bytes(1) });
    await within(started.promise, 2_000, "the handler in flight");
    const at = Date.now();
    await within(router.close(), 2_000, "close() past drainMs");
    assert.ok(Date.now() - at < 1_000, `close() took ${Date.now() - at} ms with drainMs 30 and timeoutMs 10 s`);
    assert.equal(reasons.length, 1);
    assert.equal((reasons[0] as { transient?: boolean }).transient, true);
    assert.deepEqual(dlq, []);
  } finally {
    await router.close();
    await bus.close();
  }
});

Deno.test("MessageRouter.attach() absorbs brief failures in place and dead-letters a handler that outlives its timeout", async () => {
  const bus = createMemoryBroker({ redelivery: { baseDelayMs: 1, maxDelayMs: 5 }, logger: quiet });
  const svc = new Service({ name: "router-test", logger: quiet });
  const calls: { id: string; attempt: number; aborted?: boolean }[] = [];
  new MessageRouter({ bus: () => Promise.resolve(bus), logger: quiet, timeoutMs: 30, retry: { maxAttempts: 3 } })
    .subscribe("wiring.events", async (msg) => {
      calls.push({ id: msg.id, attempt: msg.attempt });
      if (msg.id === "flaky" && calls.filter((c) => c.id === "flaky").length < 3) throw new Error("brief fault");
      if (msg.id === "stuck") {
        const signal = currentContext()!.signal;
        await within(
          new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true })),
          5_000,
          "the abort at the 30 ms timeout",
        );
        calls.at(-1)!.aborted = true;
        throw signal.reason;
      }
    }, { group: "wiring" })
    .attach(svc, { check: "events" });
  const dead = Promise.withResolvers<string>();
  await bus.subscribe("wiring.events.dlq", (msg) => dead.resolve(msg.headers["dlq-error"] ?? ""), { group: "ops" });
  await svc.start();
  try {
    const ready = await (await fetch(`${svc.url}/readyz`)).json();
    assert.equal(ready.checks.events.ok, true);
    await bus.publish("wiring.events", { id: "flaky", payload: bytes(1) });
    await bus.publish("wiring.events", { id: "stuck", payload: bytes(2) });
    const reason = await within(dead.promise, 10_000, "the stuck message dead-lettered");
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

const natsUrl = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";

Deno.test("MessageRouter on NATS JetStream: starts, drains the handler in flight, and a message refused while draining is redelivered", async () => {
  const topic = unique("router.js");
  const group = unique("router");
  const bus = await createJetStreamPubSub({
    servers: natsUrl,
    logger: quiet,
    ackWaitMs: 5_000,
    redelivery: { baseDelayMs: 20 },
  });
  const gate = Promise.withResolvers<void>();
  const started = Promise.withResolvers<void>();
  const first: string[] = [];
  const router = new MessageRouter({ bus, logger: quiet }).subscribe(topic, async (msg) => {
    first.push(msg.id);
    started.resolve();
    await within(gate.promise, 10_000, "the test to open the gate");
  }, { group, concurrency: 2 });
  try {
    await router.start();
    assert.equal(router.state, "running");
    await bus.publish(topic, { id: "in-flight", payload: bytes(1) });
    await within(started.promise, 5_000, "the first message in flight");
    const closing = router.close();
    await bus.publish(topic, { id: "arrived-while-draining", payload: bytes(2) });
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(first, ["in-flight"]);
    gate.resolve();
    await within(closing, 5_000, "close() once the handler finished");

    const second: Message[] = [];
    const next = new MessageRouter({ bus, logger: quiet }).subscribe(topic, (msg) => void second.push(msg), { group });
    await next.start();
    await waitUntil(() => second.length > 0, 5_000, "the refused message at the group's next subscription");
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The drained message was acknowledged: only the refused one comes back.
    assert.deepEqual(second.map((m) => m.id), ["arrived-while-draining"]);
    await next.close();
  } finally {
    gate.resolve();
    await router.close();
    await bus.close();
    const nc = await connect({ servers: natsUrl });
    try {
      const jsm = await jetstreamManager(nc);
      const name = await jsm.streams.find(topic).catch(() => undefined);
      if (name) await jsm.streams.delete(name);
    } finally {
      await nc.close();
    }
  }
});
