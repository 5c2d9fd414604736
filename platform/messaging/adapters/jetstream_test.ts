import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { createLogger } from "../../log/mod.ts";
import {
  createJetStreamPubSub,
  jetStreamFeatures,
  type JetStreamPubSub,
  type JetStreamPubSubOptions,
} from "./jetstream.ts";
import { type Message, type PubSub, reply } from "../message.ts";
import { RequestTimeoutError } from "../request_errors.ts";
import { type ConformanceTarget, startInfraBroker, testPubSubConformance } from "../testing/mod.ts";
import { startNats, waitUntil, within } from "../../testing/mod.ts";

const servers = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";
const quiet = createLogger("messaging", { write: () => {} });
const enc = (s: string) => new TextEncoder().encode(s);

/** Deletes the streams holding `topics`, so test runs leave nothing behind on the server. */
async function deleteStreams(topics: Iterable<string>, url = servers): Promise<void> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    for (const topic of topics) {
      const name = await jsm.streams.find(topic).catch(() => undefined);
      if (name) await jsm.streams.delete(name);
    }
  } finally {
    await nc.close();
  }
}

/**
 * A conformance target on `url`; exported for the crash case's consumer process. A 2 s ack wait lets the server
 * redeliver what a killed consumer had pulled soon. Closing deletes the streams the case used.
 *
 * @example
 * ```ts ignore
 * const target = await jetStreamTarget("nats://127.0.0.1:4222");
 * await target.publisher.publish("orders.events", { payload: new Uint8Array() });
 * ```
 */
export async function jetStreamTarget(url = servers): Promise<ConformanceTarget> {
  const bus = await createJetStreamPubSub({
    servers: url,
    logger: quiet,
    ackWaitMs: 2000,
    redelivery: { baseDelayMs: 20 },
  });
  const topics = new Set<string>();
  const tracked: PubSub = {
    features: bus.features,
    ping: (signal) => bus.ping(signal),
    publish(topic, msg) {
      topics.add(topic);
      return bus.publish(topic, msg);
    },
    request(topic, msg, options) {
      topics.add(topic);
      return bus.request(topic, msg, options);
    },
    subscribe(topic, handler, options) {
      topics.add(topic);
      return bus.subscribe(topic, handler, options);
    },
    close: () => bus.close(),
  };
  return { publisher: tracked, subscriber: tracked, close: () => deleteStreams(topics, url) };
}

testPubSubConformance("jetstream", () => jetStreamTarget(), jetStreamFeatures, {
  consumerProcess: { module: import.meta.url, export: "jetStreamTarget" },
  async restartableBroker() {
    const broker = await startInfraBroker("nats");
    return { ...broker, connect: () => jetStreamTarget(`nats://127.0.0.1:${broker.port}`) };
  },
});

/** A unique topic and group, adapters made on demand, and every adapter and stream cleaned up on dispose. */
function setup() {
  const id = crypto.randomUUID().slice(0, 12);
  const buses: PubSub[] = [];
  const connections: NatsConnection[] = [];
  return {
    topic: `jetstream-test.${id}`,
    group: `g-${id}`,
    async bus(options: JetStreamPubSubOptions = {}) {
      const bus = await createJetStreamPubSub({ servers, logger: quiet, ...options });
      buses.push(bus);
      return bus;
    },
    async connection() {
      const nc = await connect({ servers });
      connections.push(nc);
      return nc;
    },
    async [Symbol.asyncDispose]() {
      for (const bus of buses) await bus.close();
      for (const nc of connections) if (!nc.isClosed()) await nc.close();
      await deleteStreams([this.topic]);
    },
  };
}

/** The server's view of the durable consumer of `env.group` on the stream holding `env.topic`. */
async function consumerInfo(env: ReturnType<typeof setup>, bus: JetStreamPubSub) {
  const jsm = await jetstreamManager(await env.connection());
  return await jsm.consumers.info(await bus.ensureStream(env.topic), env.group);
}

Deno.test("createJetStreamPubSub() rejects a subscription without a group with TypeError", async () => {
  await using env = setup();
  const bus = await env.bus();
  await rejects(bus.subscribe(env.topic, () => {}), TypeError);
});

Deno.test("createJetStreamPubSub() naks a failed message with a backoff delay and redelivers it with attempt + 1", async () => {
  await using env = setup();
  const bus = await env.bus({ redelivery: { baseDelayMs: 200 } });
  const deliveries: { attempt: number; at: number }[] = [];
  const done = Promise.withResolvers<void>();
  await bus.subscribe(env.topic, (msg) => {
    deliveries.push({ attempt: msg.attempt, at: performance.now() });
    if (msg.attempt === 1) throw new Error("first attempt fails");
    done.resolve();
  }, { group: env.group });
  await bus.publish(env.topic, { id: "nak-me", payload: enc("x") });
  await within(done.promise, 10_000, "the nak'd message's second delivery");
  deepStrictEqual(deliveries.map((d) => d.attempt), [1, 2]);
  // The server holds a nak'd message for at least the delay; only a lower bound is checked.
  ok(deliveries[1].at - deliveries[0].at >= 150, `redelivered after ${deliveries[1].at - deliveries[0].at} ms`);
});

Deno.test("createJetStreamPubSub() terminates a message after maxDeliver attempts and logs it as an error", async () => {
  await using env = setup();
  const lines: string[] = [];
  const ackWaitMs = 500;
  const bus = await env.bus({
    maxDeliver: 3,
    ackWaitMs,
    redelivery: { baseDelayMs: 10 },
    logger: createLogger("messaging", { write: (line) => lines.push(line) }),
  });
  const attempts: number[] = [];
  await bus.subscribe(env.topic, (msg) => {
    attempts.push(msg.attempt);
    throw new Error(`always fails ${msg.attempt}`);
  }, { group: env.group });
  await bus.publish(env.topic, { id: "poison", payload: enc("bad") });
  const terminated = () =>
    lines.map((l) => JSON.parse(l)).find((l) => l.msg.includes("terminating the message") && l.messageId === "poison");
  await waitUntil(() => terminated() !== undefined, 10_000, "the terminate logged");
  strictEqual(terminated().level, "error");
  strictEqual(terminated().attempt, 3);
  // The server applies the term asynchronously: wait until the consumer holds nothing, then give a redelivery (nak
  // delay or ack wait) the time it would need to show up.
  const jsm = await jetstreamManager(await env.connection());
  const stream = await bus.ensureStream(env.topic);
  for (let i = 0;; i++) {
    const info = await jsm.consumers.info(stream, env.group);
    if (info.num_ack_pending === 0 && info.num_pending === 0) break;
    ok(i < 100, `consumer still holds the message: ${JSON.stringify(info.num_ack_pending)} awaiting ack`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, ackWaitMs + 200));
  deepStrictEqual(attempts, [1, 2, 3]);
});

Deno.test("createJetStreamPubSub() keeps messages published while no subscriber runs for the durable group", async () => {
  await using env = setup();
  const publisher = await env.bus();
  const got: string[] = [];
  let next = Promise.withResolvers<void>();
  const handler = (msg: Message) => {
    got.push(msg.id);
    if (got.length === 1 || got.length === 3) next.resolve();
  };
  await publisher.publish(env.topic, { id: "before-any-subscriber", payload: enc("1") });
  const first = await env.bus();
  await first.subscribe(env.topic, handler, { group: env.group });
  await within(next.promise, 10_000, "the message published before any subscriber");
  await first.close();
  next = Promise.withResolvers<void>();
  await publisher.publish(env.topic, { id: "while-down-1", payload: enc("2") });
  await publisher.publish(env.topic, { id: "while-down-2", payload: enc("3") });
  const second = await env.bus();
  await second.subscribe(env.topic, handler, { group: env.group });
  await within(next.promise, 10_000, "the two messages published while no subscriber ran");
  deepStrictEqual(got, ["before-any-subscriber", "while-down-1", "while-down-2"]);
});

Deno.test("createJetStreamPubSub() stores a message once when it is published twice with the same id", async () => {
  await using env = setup();
  const bus = await env.bus();
  const got: string[] = [];
  const done = Promise.withResolvers<void>();
  await bus.publish(env.topic, { id: "dup", payload: enc("1") });
  await bus.publish(env.topic, { id: "dup", payload: enc("1") });
  await bus.publish(env.topic, { id: "after", payload: enc("2") });
  await bus.subscribe(env.topic, (msg) => {
    got.push(msg.id);
    if (msg.id === "after") done.resolve();
  }, { group: env.group });
  await within(done.promise, 10_000, "the message after the duplicate");
  deepStrictEqual(got, ["dup", "after"]);
});

Deno.test("createJetStreamPubSub() redelivers unacknowledged messages to a new subscriber after a consumer crash", async () => {
  await using env = setup();
  const ackWaitMs = 1000;
  const publisher = await env.bus();
  const ids = ["c1", "c2", "c3", "c4", "c5"];
  for (const id of ids) await publisher.publish(env.topic, { id, payload: enc(id) });

  const crashing = await env.connection();
  const doomed = await env.bus({ connection: crashing, ackWaitMs });
  const gate = Promise.withResolvers<void>();
  const taken: string[] = [];
  const threeTaken = Promise.withResolvers<void>();
  await doomed.subscribe(env.topic, async (msg) => {
    taken.push(msg.id);
    if (taken.length === 3) threeTaken.resolve();
    await within(gate.promise, 30_000, "the test to open the doomed handlers' gate");
  }, { group: env.group, concurrency: 3 });
  await within(threeTaken.promise, 10_000, "three messages taken by the doomed subscriber");
  // The process "dies": its connection goes away before any handler finished, so nothing was acknowledged.
  await crashing.close();
  gate.resolve();
  await doomed.close();
  strictEqual(taken.length, 3, `pulled ${taken} with concurrency 3`);

  const survivor = await env.bus({ ackWaitMs });
  const got = new Map<string, number>();
  const all = Promise.withResolvers<void>();
  await survivor.subscribe(env.topic, (msg) => {
    got.set(msg.id, msg.attempt);
    if (got.size === ids.length) all.resolve();
  }, { group: env.group, concurrency: 5 });
  await within(all.promise, 15_000, "every message on the survivor, the unacknowledged ones redelivered");
  deepStrictEqual([...got.keys()].sort(), ids);
  for (const id of taken) ok(got.get(id)! >= 2, `${id} redelivered with attempt ${got.get(id)}`);
});

Deno.test("createJetStreamPubSub() holds at most concurrency messages pulled ahead of its running handlers", async () => {
  await using env = setup();
  const bus = await env.bus();
  const n = 20;
  for (let i = 0; i < n; i++) await bus.publish(env.topic, { id: `m${i}`, payload: enc(String(i)) });
  const concurrency = 2;
  const gate = Promise.withResolvers<void>();
  const handled = new Set<string>();
  const started = Promise.withResolvers<void>();
  const all = Promise.withResolvers<void>();
  let running = 0;
  await bus.subscribe(env.topic, async (msg) => {
    if (++running === concurrency) started.resolve();
    await within(gate.promise, 30_000, "the test to open the handlers' gate");
    running--;
    handled.add(msg.id);
    if (handled.size === n) all.resolve();
  }, { group: env.group, concurrency });
  try {
    await within(started.promise, 10_000, `${concurrency} handlers running`);
    // Time for any pull request the subscription would send while its handlers are busy to be answered.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const info = await consumerInfo(env, bus);
    ok(
      info.num_ack_pending <= 2 * concurrency,
      `${info.num_ack_pending} messages delivered and unacknowledged with ${concurrency} handlers running`,
    );
  } finally {
    gate.resolve();
  }
  await within(all.promise, 15_000, `all ${n} messages handled once the gate opened`);
});

Deno.test("createJetStreamPubSub() restarts the ack wait of a message that waited for a free handler", async () => {
  await using env = setup();
  // Each handler takes 60% of the ack wait, so a message that waited for a whole handler run before its own would
  // be redelivered while handled, had its ack wait not started over when its handler did.
  const ackWaitMs = 1000;
  const bus = await env.bus({ ackWaitMs });
  const ids = ["w1", "w2", "w3", "w4"];
  for (const id of ids) await bus.publish(env.topic, { id, payload: enc(id) });
  const deliveries: string[] = [];
  const all = Promise.withResolvers<void>();
  await bus.subscribe(env.topic, async (msg) => {
    deliveries.push(`${msg.id}#${msg.attempt}`);
    await new Promise((resolve) => setTimeout(resolve, 0.6 * ackWaitMs));
    if (deliveries.length >= ids.length) all.resolve();
  }, { group: env.group, concurrency: 2 });
  await within(all.promise, 15_000, "the four messages handled two at a time");
  await new Promise((resolve) => setTimeout(resolve, ackWaitMs + 200));
  deepStrictEqual(deliveries.sort(), ids.map((id) => `${id}#1`));
});

Deno.test("createJetStreamPubSub() Subscription.close() sends the acks of the messages it handled", async () => {
  await using env = setup();
  const bus = await env.bus();
  const n = 10;
  for (let i = 0; i < n; i++) await bus.publish(env.topic, { payload: enc(String(i)) });
  let handled = 0;
  const all = Promise.withResolvers<void>();
  const sub = await bus.subscribe(env.topic, () => {
    if (++handled === n) all.resolve();
  }, { group: env.group, concurrency: 4 });
  await within(all.promise, 10_000, `all ${n} messages handled`);
  await sub.close();
  // The server applies acks asynchronously: give it a moment, far less than the 30 s ack wait after which it would
  // redeliver messages whose acks were lost.
  for (let i = 0;; i++) {
    const info = await consumerInfo(env, bus);
    if (info.num_ack_pending === 0 && info.num_pending === 0) break;
    ok(i < 40, `${info.num_ack_pending} delivered but not acknowledged, ${info.num_pending} not delivered`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
});

Deno.test("createJetStreamPubSub() close() while its server is SIGKILLed resolves and ends the connection's reconnecting", async () => {
  await using nats = await startNats();
  const bus = await createJetStreamPubSub({ servers: nats.url, logger: quiet });
  await bus.subscribe(`gone.${crypto.randomUUID().slice(0, 8)}`, () => {}, { group: "g" });
  await nats.kill();
  await rejects(bus.ping(AbortSignal.timeout(1000)));
  const started = performance.now();
  await bus.close();
  ok(performance.now() - started < 10_000, "close() took too long");
  // The resource sanitizer fails this test if the connection kept reconnecting (a socket or timer left open).
});

Deno.test("createJetStreamPubSub() acks a request whose caller stopped waiting unhandled, and answers the next one", async () => {
  await using env = setup();
  const bus = await env.bus();
  await rejects(
    bus.request(env.topic, { id: "expired", payload: enc("late") }, { timeoutMs: 100 }),
    RequestTimeoutError,
  );
  const handled: string[] = [];
  await bus.subscribe(env.topic, async (msg) => {
    handled.push(msg.id);
    await reply(msg, { payload: msg.payload });
  }, { group: env.group });
  const answer = await within(
    bus.request(env.topic, { id: "fresh", payload: enc("now") }, { timeoutMs: 5_000 }),
    6_000,
    "the reply to the fresh request",
  );
  strictEqual(answer.headers["x-correlation-id"], "fresh");
  // One consumer with concurrency 1 takes the stream in order: the expired request came first and was skipped.
  deepStrictEqual(handled, ["fresh"]);
});
