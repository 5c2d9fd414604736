import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { childContext, type Context, currentContext, runWithContext } from "../../context/mod.ts";
import {
  type Features,
  type Message,
  type OutgoingMessage,
  type Publisher,
  type PubSub,
  reply,
  type Subscriber,
} from "../message.ts";
import { NoRespondersError, RequestTimeoutError } from "../request_errors.ts";
import { startConsumerProcess } from "./consumer_process.ts";
import { WaitTimeoutError, within } from "../../testing/mod.ts";

/**
 * A fresh publisher/subscriber pair for one conformance case.
 *
 * @example A target on the in-memory broker
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import type { ConformanceTarget } from "./conformance.ts";
 * const bus = createMemoryBroker();
 * const target: ConformanceTarget = { publisher: bus, subscriber: bus };
 * await target.publisher.close();
 * ```
 */
export interface ConformanceTarget {
  /** Publishes the case's messages; may be the same object as `subscriber`. */
  publisher: Publisher;
  /** Subscribes the case's handlers. */
  subscriber: Subscriber;
  /** Creates `topic` with at least `partitions` partitions before the case uses it (Kafka); omit when not needed. */
  createTopic?(topic: string, options: { partitions: number }): Promise<void>;
  /** Releases anything else the factory made; called after `publisher` and `subscriber` closed. */
  close?(): Promise<void>;
}

/**
 * A broker process of the adapter's own (never a shared one) that the restart case stops and starts again.
 *
 * @example A NATS server started through scripts/infra.sh
 * ```ts ignore
 * import { createNatsPubSub } from "../adapters/nats.ts";
 * import { startInfraBroker } from "./infra_broker.ts";
 * import type { RestartableBroker } from "./conformance.ts";
 * async function privateNats(): Promise<RestartableBroker> {
 *   const broker = await startInfraBroker("nats");
 *   return {
 *     ...broker,
 *     async connect() {
 *       const bus = await createNatsPubSub({ servers: `nats://127.0.0.1:${broker.port}` });
 *       return { publisher: bus, subscriber: bus };
 *     },
 *   };
 * }
 * ```
 */
export interface RestartableBroker extends AsyncDisposable {
  /** A fresh target connected to this broker; the case closes it. */
  connect(): Promise<ConformanceTarget>;
  /** Stops the broker process: its clients see their connections drop. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the data it stored. */
  start(): Promise<void>;
}

/**
 * Where the crash case finds a factory to run in a child process: `deno run -A` imports `module` and calls its export
 * `export`, which must build a target connected to the same broker as the suite's factory. A test file can point at
 * itself, since `deno run` ignores its `Deno.test` registrations.
 *
 * @example
 * ```ts
 * import type { ConsumerProcess } from "./conformance.ts";
 * const consumerProcess: ConsumerProcess = { module: import.meta.url, export: "kafkaTarget" };
 * ```
 */
export interface ConsumerProcess {
  module: string | URL;
  export: string;
}

/**
 * Options for {@linkcode testPubSubConformance}.
 *
 * @example Quieter, with a shorter wait
 * ```ts
 * import type { ConformanceOptions } from "./conformance.ts";
 * const options: ConformanceOptions = { timeoutMs: 5_000, report: () => {}, inProcessBroker: true };
 * ```
 */
export interface ConformanceOptions {
  /** How long a case waits for the deliveries it expects. @default {20000} */
  timeoutMs?: number;
  /** Where skip reasons and the timings of the long cases are printed. @default {console.log} */
  report?: (line: string) => void;
  /** Lets the crash case run a consumer in a child process and SIGKILL it; without it that case is skipped. */
  consumerProcess?: ConsumerProcess;
  /** Starts a private broker for the restart case; without it (no broker process, as in memory) that case is skipped. */
  restartableBroker?: () => Promise<RestartableBroker>;
  /**
   * The broker keeps its messages in this process (the in-memory adapter): the backpressure case then checks only
   * the in-flight limit, since the backlog it builds up lives on this heap by design. @default {false}
   */
  inProcessBroker?: boolean;
}

/**
 * Registers the universal publisher/subscriber suite (one `Deno.test` per case, each on a unique topic and group)
 * for an adapter. Cases for features the adapter does not declare, or needing an option it was not given, are
 * registered as ignored, with the reason printed. Every adapter, the in-memory fake included, must pass it.
 *
 * @example Run the suite against the in-memory broker
 * ```ts ignore
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { testPubSubConformance } from "./conformance.ts";
 * testPubSubConformance("memory", () => {
 *   const bus = createMemoryBroker();
 *   return Promise.resolve({ publisher: bus, subscriber: bus });
 * }, createMemoryBroker().features, { inProcessBroker: true });
 * ```
 */
export function testPubSubConformance(
  name: string,
  factory: () => Promise<ConformanceTarget>,
  features: Features,
  options: ConformanceOptions = {},
): void {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const report = options.report ?? ((line: string) => console.log(line));

  /** Registers a case, ignored with the reason printed when `skip` gives one. */
  const register = (title: string, skip: string | undefined, fn: () => Promise<void>) => {
    if (skip) report(`[${name}] skipping "${title}": ${skip}`);
    Deno.test({ name: `${name}: ${title}`, ignore: skip !== undefined, fn });
  };

  const missingFeatures = (needs: (keyof Features)[]) => {
    const missing = needs.filter((f) => !features[f]);
    return missing.length > 0 ? `the adapter does not declare ${missing.join(", ")}` : undefined;
  };

  const test = (
    title: string,
    needs: (keyof Features)[],
    fn: (t: ConformanceTarget, topic: string, wait: Waiter) => Promise<void>,
    skip?: string,
  ) =>
    register(title, missingFeatures(needs) ?? skip, async () => {
      const target = await factory();
      try {
        await fn(target, uniqueName("conformance"), waiter(timeoutMs));
      } finally {
        await target.subscriber.close();
        await target.publisher.close();
        await target.close?.();
      }
    });

  test(
    "a published message reaches the handler with its id, key, payload, attempt 1 and timestamp",
    [],
    async (t, topic, wait) => {
      await t.createTopic?.(topic, { partitions: 1 });
      const got: Message[] = [];
      await t.subscriber.subscribe(topic, (msg) => {
        got.push(msg);
        wait.notify();
      }, { group: uniqueName("g") });
      const before = Date.now();
      await t.publisher.publish(topic, { id: "id-1", key: "key-1", payload: bytes("hello") });
      await wait.until(() => got.length >= 1, () => "1 message");
      strictEqual(got[0].id, "id-1");
      strictEqual(got[0].key, "key-1");
      strictEqual(text(got[0].payload), "hello");
      strictEqual(got[0].attempt, 1);
      ok(got[0].timestamp >= before - 1000 && got[0].timestamp <= Date.now() + 1000, `timestamp ${got[0].timestamp}`);
      strictEqual(got.length, 1);
    },
  );

  test("a message without id gets a unique one", [], async (t, topic, wait) => {
    await t.createTopic?.(topic, { partitions: 1 });
    const got: Message[] = [];
    await t.subscriber.subscribe(topic, (msg) => {
      got.push(msg);
      wait.notify();
    }, { group: uniqueName("g") });
    await t.publisher.publish(topic, { payload: bytes("a") });
    await t.publisher.publish(topic, { payload: bytes("b") });
    await wait.until(() => got.length >= 2, () => "2 messages");
    ok(got[0].id.length > 0 && got[0].id !== got[1].id, `ids ${got[0].id} ${got[1].id}`);
    strictEqual(got[0].key, undefined);
  });

  test("headers and a payload holding all 256 byte values arrive unchanged", [], async (t, topic, wait) => {
    await t.createTopic?.(topic, { partitions: 1 });
    const got: Message[] = [];
    await t.subscriber.subscribe(topic, (msg) => {
      got.push(msg);
      wait.notify();
    }, { group: uniqueName("g") });
    const payload = Uint8Array.from({ length: 256 }, (_, i) => i);
    const headers = { "content-type": "application/octet-stream", "x-custom": "a b;c=d,e/f:g", "x-empty": "" };
    await t.publisher.publish(topic, { payload, headers });
    await t.publisher.publish(topic, { payload: new Uint8Array(0) });
    await wait.until(() => got.length >= 2, () => "2 messages");
    deepStrictEqual(got[0].payload, payload);
    for (const [k, v] of Object.entries(headers)) strictEqual(got[0].headers[k], v, `header ${k}`);
    strictEqual(got[1].payload.length, 0);
  });

  test(
    "the handler runs in a Context restored from the publisher's Context, explicit headers winning",
    [],
    async (t, topic, wait) => {
      await t.createTopic?.(topic, { partitions: 1 });
      const seen: { id: string; ctx?: Context; aborted?: boolean }[] = [];
      await t.subscriber.subscribe(topic, (msg) => {
        const ctx = currentContext();
        seen.push({ id: msg.id, ctx, aborted: ctx?.signal.aborted });
        wait.notify();
      }, { group: uniqueName("g") });
      const deadline = Date.now() + 60_000;
      const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      const ctx: Context = {
        requestId: "conformance-req-1",
        traceparent,
        deadline,
        signal: new AbortController().signal,
      };
      await runWithContext(ctx, async () => {
        await t.publisher.publish(topic, { id: "from-context", payload: bytes("x") });
        await t.publisher.publish(topic, {
          id: "explicit",
          headers: { "x-request-id": "explicit-req-2" },
          payload: bytes("y"),
        });
      });
      await t.publisher.publish(topic, { id: "no-context", payload: bytes("z") });
      await wait.until(() => seen.length >= 3, () => `3 messages, got ${seen.length}`);
      const byId = Object.fromEntries(seen.map((s) => [s.id, s]));
      strictEqual(byId["from-context"].ctx?.requestId, "conformance-req-1");
      strictEqual(byId["from-context"].ctx?.traceparent, traceparent);
      strictEqual(byId["from-context"].ctx?.deadline, deadline);
      strictEqual(byId["from-context"].aborted, false);
      strictEqual(byId["explicit"].ctx?.requestId, "explicit-req-2");
      ok(byId["no-context"].ctx?.requestId, "a context with a fresh request id even without headers");
      strictEqual(byId["no-context"].ctx?.deadline, undefined);
    },
  );

  test(
    "same-key messages are handled in publish order, even with concurrency",
    ["orderedPerKey"],
    async (t, topic, wait) => {
      await t.createTopic?.(topic, { partitions: 3 });
      const keys = ["k0", "k1", "k2", "k3", "k4"];
      const perKey = 12;
      const seen = new Map<string, number[]>(keys.map((k) => [k, []]));
      let total = 0;
      await t.subscriber.subscribe(topic, async (msg) => {
        if (Number(text(msg.payload)) % 3 === 0) await sleep(2);
        seen.get(msg.key!)!.push(Number(text(msg.payload)));
        total++;
        wait.notify();
      }, { group: uniqueName("g"), concurrency: 4 });
      for (let i = 0; i < perKey; i++) {
        for (const key of keys) await t.publisher.publish(topic, { key, payload: bytes(String(i)) });
      }
      await wait.until(() => total >= keys.length * perKey, () => `${keys.length * perKey} messages, got ${total}`);
      for (const key of keys) deepStrictEqual(seen.get(key), Array.from({ length: perKey }, (_, i) => i), key);
    },
  );

  test(
    "a handler that throws gets the message again with attempt incremented",
    ["redelivery"],
    async (t, topic, wait) => {
      await t.createTopic?.(topic, { partitions: 1 });
      const attempts: number[] = [];
      const order: string[] = [];
      await t.subscriber.subscribe(topic, (msg) => {
        if (msg.id === "flaky") {
          attempts.push(msg.attempt);
          if (msg.attempt < 3) throw new Error(`conformance: deliberate failure ${msg.attempt}`);
        }
        order.push(msg.id);
        wait.notify();
      }, { group: uniqueName("g") });
      await t.publisher.publish(topic, { id: "flaky", key: "same", payload: bytes("1") });
      await t.publisher.publish(topic, { id: "after", key: "same", payload: bytes("2") });
      await wait.until(() => order.length >= 2, () => `2 handled messages, got ${order}`);
      deepStrictEqual(attempts, [1, 2, 3]);
      if (features.orderedPerKey) deepStrictEqual(order, ["flaky", "after"]);
    },
  );

  test(
    "subscriptions sharing a group split the messages, each handled once",
    ["consumerGroups"],
    async (t, topic, wait) => {
      await t.createTopic?.(topic, { partitions: 2 });
      const group = uniqueName("g");
      const handled = [new Map<string, number>(), new Map<string, number>()];
      const total = () => handled[0].size + handled[1].size;
      for (const mine of handled) {
        await t.subscriber.subscribe(topic, async (msg) => {
          await sleep(1);
          mine.set(msg.id, (mine.get(msg.id) ?? 0) + 1);
          wait.notify();
        }, { group });
      }
      const n = 40;
      for (let i = 0; i < n; i++) {
        await t.publisher.publish(topic, {
          id: `m${i}`,
          key: `key-${i}`,
          payload: bytes(""),
        });
      }
      await wait.until(() => total() >= n, () => `${n} messages, got ${total()}`);
      await sleep(200);
      const counts = new Map<string, number>();
      for (const mine of handled) for (const [id, c] of mine) counts.set(id, (counts.get(id) ?? 0) + c);
      strictEqual(counts.size, n);
      for (const [id, c] of counts) strictEqual(c, 1, `message ${id} handled ${c} times`);
      ok(handled[0].size > 0 && handled[1].size > 0, `split ${handled[0].size}/${handled[1].size}`);
    },
  );

  test("different groups each get every message", ["consumerGroups"], async (t, topic, wait) => {
    await t.createTopic?.(topic, { partitions: 2 });
    const groups = [new Set<string>(), new Set<string>()];
    for (const seen of groups) {
      await t.subscriber.subscribe(topic, (msg) => {
        seen.add(msg.id);
        wait.notify();
      }, { group: uniqueName("g") });
    }
    const n = 20;
    for (let i = 0; i < n; i++) await t.publisher.publish(topic, { id: `m${i}`, key: `key-${i}`, payload: bytes("") });
    await wait.until(() => groups.every((s) => s.size >= n), () => `${n} messages per group`);
    strictEqual(groups[0].size, n);
    strictEqual(groups[1].size, n);
  });

  test("no more handlers run at once than the subscription's concurrency", [], async (t, topic, wait) => {
    await t.createTopic?.(topic, { partitions: 4 });
    const concurrency = 3;
    let inFlight = 0;
    let maxInFlight = 0;
    let done = 0;
    await t.subscriber.subscribe(topic, async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await sleep(5);
      inFlight--;
      done++;
      wait.notify();
    }, { group: uniqueName("g"), concurrency });
    const n = 30;
    await Promise.all(
      Array.from({ length: n }, (_, i) => t.publisher.publish(topic, { key: `key-${i}`, payload: bytes("") })),
    );
    await wait.until(() => done >= n, () => `${n} messages, got ${done}`);
    ok(maxInFlight <= concurrency, `max in flight ${maxInFlight} > ${concurrency}`);
  });

  test("Subscription.close() waits for in-flight handlers", [], async (t, topic, wait) => {
    await t.createTopic?.(topic, { partitions: 1 });
    let started = false;
    let finished = false;
    const sub = await t.subscriber.subscribe(topic, async () => {
      started = true;
      wait.notify();
      await sleep(100);
      finished = true;
    }, { group: uniqueName("g") });
    await t.publisher.publish(topic, { payload: bytes("slow") });
    await wait.until(() => started, () => "the handler to start");
    await sub.close();
    strictEqual(finished, true);
  });

  test("a payload of maxMessageBytes (at least 1 MB) arrives intact", [], async (t, topic, wait) => {
    await t.createTopic?.(topic, { partitions: 1 });
    const size = t.publisher.features.maxMessageBytes;
    ok(size >= 1_000_000, `maxMessageBytes ${size} is below 1 MB`);
    const got: Message[] = [];
    await t.subscriber.subscribe(topic, (msg) => {
      got.push(msg);
      wait.notify();
    }, { group: uniqueName("g") });
    const payload = new Uint8Array(size);
    for (let i = 0; i < size; i++) payload[i] = (i * 31 + (i >>> 11)) & 0xff;
    await t.publisher.publish(topic, { id: "big", key: "big", payload });
    await wait.until(() => got.length >= 1, () => "1 message");
    strictEqual(got[0].id, "big");
    strictEqual(got[0].payload.byteLength, size);
    strictEqual(firstDifference(got[0].payload, payload), -1, "payload bytes differ");
  });

  test(
    "publish() rejects a payload over maxMessageBytes with a RangeError and sends nothing",
    [],
    async (t, topic, wait) => {
      await t.createTopic?.(topic, { partitions: 1 });
      const max = t.publisher.features.maxMessageBytes;
      const got: string[] = [];
      await t.subscriber.subscribe(topic, (msg) => {
        got.push(msg.id);
        wait.notify();
      }, { group: uniqueName("g") });
      const oversize = (err: unknown) => err instanceof RangeError && err.message.includes("maxMessageBytes");
      await rejects(t.publisher.publish(topic, { id: "one-over", payload: new Uint8Array(max + 1) }), oversize);
      await rejects(
        t.publisher.publish(topic, { id: "two-mib", payload: new Uint8Array(2 * 1024 * 1024 + 1) }),
        oversize,
      );
      await t.publisher.publish(topic, { id: "small", payload: bytes("ok") });
      await wait.until(() => got.includes("small"), () => `"small", got ${got}`);
      deepStrictEqual(got, ["small"]);
    },
  );

  test("close() is idempotent everywhere and publish() after close() rejects", [], async (t, topic, wait) => {
    await t.createTopic?.(topic, { partitions: 1 });
    let got = 0;
    const sub = await t.subscriber.subscribe(topic, () => {
      got++;
      wait.notify();
    }, { group: uniqueName("g") });
    await t.publisher.publish(topic, { payload: bytes("1") });
    await wait.until(() => got >= 1, () => "1 message");
    await Promise.all([sub.close(), sub.close()]);
    await sub.close();
    await Promise.all([t.subscriber.close(), t.subscriber.close()]);
    await Promise.all([t.publisher.close(), t.publisher.close()]);
    await t.publisher.close();
    await rejects(t.publisher.publish(topic, { payload: bytes("late") }));
  });

  test(
    "ping() answers while the broker does, also when called 20 times at once, and rejects with an aborted signal's reason and after close()",
    [],
    async (t) => {
      const ping = pingOf(t.publisher);
      const started = performance.now();
      await ping(AbortSignal.timeout(timeoutMs));
      const first = performance.now() - started;
      const again = performance.now();
      await Promise.all(Array.from({ length: 20 }, () => ping(AbortSignal.timeout(timeoutMs))));
      const twenty = performance.now() - again;
      const reason = new Error("the caller gave up");
      await rejects(ping(AbortSignal.abort(reason)), (err) => err === reason);
      await t.publisher.close();
      await rejects(ping(AbortSignal.timeout(timeoutMs)), /closed/);
      report(`[${name}] ping: first ${first.toFixed(1)} ms, then 20 concurrent in ${twenty.toFixed(1)} ms`);
    },
  );

  test(
    "a subscription with * and > wildcards gets the messages of every matching topic and of no other",
    ["wildcards"],
    async (t, topic, wait) => {
      const topics = {
        one: `${topic}.a.created`,
        two: `${topic}.b.created`,
        updated: `${topic}.a.updated`,
        deep: `${topic}.a.b.created`,
      };
      for (const name of Object.values(topics)) await t.createTopic?.(name, { partitions: 1 });
      const star = new Set<string>();
      const tail = new Set<string>();
      await t.subscriber.subscribe(`${topic}.*.created`, (msg) => {
        star.add(msg.id);
        wait.notify();
      }, { group: uniqueName("g") });
      await t.subscriber.subscribe(`${topic}.>`, (msg) => {
        tail.add(msg.id);
        wait.notify();
      }, { group: uniqueName("g") });
      for (const [id, name] of Object.entries(topics)) await t.publisher.publish(name, { id, payload: bytes(id) });
      await wait.until(
        () => star.size >= 2 && tail.size >= 4,
        () => `2 and 4 messages, got ${[...star]} and ${[...tail]}`,
      );
      await sleep(200);
      deepStrictEqual([...star].sort(), ["one", "two"]);
      deepStrictEqual([...tail].sort(), ["deep", "one", "two", "updated"]);
    },
  );

  test(
    "a wildcard subscription also gets the messages of a matching topic created after it subscribed",
    ["wildcards"],
    async (t, topic, wait) => {
      await t.createTopic?.(`${topic}.first`, { partitions: 1 });
      const got = new Set<string>();
      await t.subscriber.subscribe(`${topic}.*`, (msg) => {
        got.add(msg.id);
        wait.notify();
      }, { group: uniqueName("g") });
      await t.publisher.publish(`${topic}.first`, { id: "first", payload: bytes("1") });
      await wait.until(() => got.has("first"), () => `"first", got ${[...got]}`);
      await t.createTopic?.(`${topic}.later`, { partitions: 1 });
      await t.publisher.publish(`${topic}.later`, { id: "later", payload: bytes("2") });
      await t.publisher.publish(`${topic}.first`, { id: "first-again", payload: bytes("3") });
      await wait.until(
        () => got.has("later") && got.has("first-again"),
        () => `"later" and "first-again", got ${[...got]}`,
      );
    },
  );

  test(
    "a consumer killed with SIGKILL mid-batch loses nothing: restarted, its group gets every message it had not handled",
    ["persistent", "redelivery"],
    async (t, topic, wait) => {
      await t.createTopic?.(topic, { partitions: 2 });
      const group = uniqueName("g");
      const started = performance.now();
      const before = Array.from({ length: 200 }, (_, i) => `before-${i}`);
      await publishAll(
        t.publisher,
        topic,
        before.length,
        (i) => ({ id: before[i], key: `k${i % 8}`, payload: bytes("") }),
      );
      const child = startConsumerProcess({
        module: String(options.consumerProcess!.module),
        export: options.consumerProcess!.export,
        topic,
        group,
        concurrency: 4,
        handleMs: 20,
      });
      const inFlight = () => [...child.started].filter((id) => !child.handled.has(id));
      try {
        await child.until(
          () => child.handled.size >= 40 && inFlight().length > 0,
          timeoutMs,
          "40 messages handled and more in flight in the consumer process",
        );
      } finally {
        await child.kill();
      }
      const inFlightAtKill = inFlight();
      ok(inFlightAtKill.length > 0, "the kill came while handlers ran");
      const killed = performance.now();
      const after = Array.from({ length: 50 }, (_, i) => `after-${i}`);
      await publishAll(
        t.publisher,
        topic,
        after.length,
        (i) => ({ id: after[i], key: `k${i % 8}`, payload: bytes("") }),
      );
      const again = new Set<string>();
      await t.subscriber.subscribe(topic, (msg) => {
        again.add(msg.id);
        wait.notify();
      }, { group, concurrency: 4 });
      const lost = () => [...before, ...after].filter((id) => !child.handled.has(id) && !again.has(id));
      await wait.until(
        () => lost().length === 0,
        () => `every message not handled before the kill; ${lost().length} missing, e.g. ${lost().slice(0, 3)}`,
      );
      for (const id of inFlightAtKill) ok(again.has(id), `${id} was in flight at the kill and never came again`);
      report(
        `[${name}] crash: killed after ${child.handled.size} handled with ${inFlightAtKill.length} in flight; ` +
          `the restarted consumer caught up ${seconds(performance.now() - killed)} after the kill ` +
          `(${again.size} deliveries); case ${seconds(performance.now() - started)}`,
      );
    },
    options.consumerProcess ? undefined : "no consumerProcess option, so no consumer to run in a child process",
  );

  test(
    "a slow consumer of 100,000 messages never runs more handlers than its concurrency and holds a bounded part of them",
    [],
    async (t, topic) => {
      await t.createTopic?.(topic, { partitions: 4 });
      const n = 100_000;
      const concurrency = 8;
      const payload = new Uint8Array(BACKLOG_PAYLOAD_BYTES).fill(0x5a);
      const publish = () =>
        publishAll(t.publisher, topic, n, (i) => ({ id: String(i), key: `k${i % 64}`, payload }), 500);
      const wait = waiter(Math.max(timeoutMs, 180_000));
      const deliveries = new Uint8Array(n);
      let distinct = 0;
      let inFlight = 0;
      let maxInFlight = 0;
      let publishing = false;
      let slowUntil = Infinity;
      let memory: LiveMemory | undefined;
      const started = performance.now();
      // A persistent broker holds the backlog itself: all of it is there before the consumer starts. Otherwise the
      // backlog builds up while the consumer is slow.
      if (features.persistent) await publish();
      const published = performance.now();
      try {
        memory = liveMemory();
        await t.subscriber.subscribe(topic, async (msg) => {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          // Slow while publishing and for 2 s from the first delivery, then fast, so the case ends in sensible time.
          if (slowUntil === Infinity) slowUntil = performance.now() + 2000;
          if (publishing || performance.now() < slowUntil) await sleep(5);
          const i = Number(msg.id);
          if (deliveries[i] === 0) distinct++;
          if (deliveries[i] < 255) deliveries[i]++;
          inFlight--;
          if (distinct % 1000 === 0) wait.notify();
        }, { group: uniqueName("g"), concurrency });
        const consuming = performance.now();
        if (!features.persistent) {
          publishing = true;
          await publish().finally(() => publishing = false);
        }
        if (features.redelivery) {
          await wait.until(() => distinct >= n, () => `${n} distinct messages, got ${distinct}`);
        } else {
          // At-most-once: an overloaded subscriber may drop messages, so wait until deliveries stop.
          await settled(() => distinct, 2000, Math.max(timeoutMs, 180_000));
        }
        const handled = performance.now();
        const growth = memory.stop();
        report(
          `[${name}] backpressure: ${distinct} of ${n} handled in ${seconds(handled - consuming)}` +
            (features.persistent ? ` after publishing them in ${seconds(published - started)}` : " while publishing") +
            `; at most ${maxInFlight} of ${concurrency} in flight; live memory peaked ${mib(growth)} MiB above ` +
            `the baseline; case ${seconds(handled - started)}`,
        );
        ok(maxInFlight <= concurrency, `max in flight ${maxInFlight} > ${concurrency}`);
        if (features.redelivery) strictEqual(distinct, n);
        else {
          ok(distinct > 0, "nothing was delivered");
          ok(deliveries.every((d) => d <= 1), "an at-most-once adapter delivered a message twice");
        }
        if (options.inProcessBroker) {
          report(`[${name}] backpressure: memory bound not checked, as the broker keeps the backlog on this heap`);
        } else {
          ok(
            growth < BACKLOG_MEMORY_BOUND,
            `live memory peaked ${mib(growth)} MiB above the baseline, over the ${mib(BACKLOG_MEMORY_BOUND)} MiB bound`,
          );
        }
      } finally {
        memory?.stop();
      }
    },
  );

  register(
    "after its broker restarts, a subscriber gets what is published afterwards and, when persistent, what was stored before",
    options.restartableBroker
      ? undefined
      : "no restartableBroker option (the adapter has no broker process to restart)",
    async () => {
      const topic = uniqueName("conformance");
      const wait = waiter(Math.max(timeoutMs, 60_000));
      await using broker = await options.restartableBroker!();
      const t = await broker.connect();
      try {
        await t.createTopic?.(topic, { partitions: 1 });
        const live = new Set<string>();
        await t.subscriber.subscribe(topic, (msg) => {
          live.add(msg.id);
          wait.notify();
        }, { group: uniqueName("g") });
        const ids = (prefix: string) => Array.from({ length: 5 }, (_, i) => `${prefix}-${i}`);
        const before = ids("before");
        for (const id of before) await t.publisher.publish(topic, { id, payload: bytes(id) });
        await wait.until(() => before.every((id) => live.has(id)), () => `${before}, got ${[...live]}`);

        const ping = pingOf(t.publisher);
        await ping(AbortSignal.timeout(timeoutMs));
        const stopped = performance.now();
        await broker.stop();
        // Down: a ping must fail, and no later than its signal allows, however the client waits for the broker.
        const pingedDown = performance.now();
        await rejects(ping(AbortSignal.timeout(PING_BOUND_MS)), "ping() resolved while the broker was stopped");
        const downPingMs = performance.now() - pingedDown;
        ok(downPingMs < PING_BOUND_MS + 500, `ping() took ${downPingMs.toFixed(0)} ms to fail, past its signal`);
        await broker.start();
        const restarted = performance.now();
        // Probe until one gets through: that is the subscriber back after reconnecting (and resubscribing).
        const deadline = restarted + Math.max(timeoutMs, 60_000);
        for (let i = 0; ![...live].some((id) => id.startsWith("probe-")); i++) {
          ok(performance.now() < deadline, "no probe reached the subscriber after the broker restarted");
          await publishEventually(t.publisher, topic, { id: `probe-${i}`, payload: bytes("") }, deadline);
          await sleep(250);
        }
        const resumed = performance.now();
        const answered = await pingEventually(ping, deadline);
        const after = ids("after");
        for (const id of after) await publishEventually(t.publisher, topic, { id, payload: bytes(id) }, deadline);
        await wait.until(() => after.every((id) => live.has(id)), () => `${after}, got ${[...live]}`);
        if (features.persistent) {
          const late = new Set<string>();
          await t.subscriber.subscribe(topic, (msg) => {
            late.add(msg.id);
            wait.notify();
          }, { group: uniqueName("g") });
          const stored = [...before, ...after];
          await wait.until(
            () => stored.every((id) => late.has(id)),
            () => `${stored} in a new group, got ${[...late]}`,
          );
        }
        report(
          `[${name}] restart: the broker was down and up again in ${seconds(restarted - stopped)}, ` +
            `the subscriber got messages again ${seconds(resumed - restarted)} later; ping failed in ` +
            `${downPingMs.toFixed(0)} ms while down and answered ${seconds(answered - restarted)} after the restart`,
        );
      } finally {
        await t.subscriber.close();
        await t.publisher.close();
        await t.close?.();
      }
    },
  );

  const requester = (t: ConformanceTarget) => {
    const request = t.publisher.request?.bind(t.publisher);
    ok(request, "the adapter declares requestReply but its publisher has no request()");
    return request;
  };

  /** Settles with the error `promise` rejects with (or fails the case when it resolves), within the case's bound. */
  const failure = async (promise: Promise<unknown>, what: string): Promise<Error & { transient?: unknown }> => {
    const outcome = await within(promise.then(() => undefined, (err: Error) => err), timeoutMs, what);
    ok(outcome, `${what}: resolved instead`);
    return outcome;
  };

  test(
    "request() resolves with the one reply, correlated with the request, the responder running in the caller's Context",
    ["requestReply"],
    async (t, topic) => {
      await t.createTopic?.(topic, { partitions: 1 });
      const request = requester(t);
      const seen: { requestId?: string; deadline?: number; aborted?: boolean; again?: string }[] = [];
      await t.subscriber.subscribe(topic, async (msg) => {
        const ctx = currentContext();
        const entry: (typeof seen)[number] = { requestId: ctx?.requestId, deadline: ctx?.deadline };
        entry.aborted = ctx?.signal.aborted;
        seen.push(entry);
        await reply(msg, { headers: { "x-answer": "yes" }, payload: bytes(`re: ${text(msg.payload)}`) });
        entry.again = await reply(msg, { payload: bytes("again") }).then(() => "sent", (err) => err.message);
      }, { group: uniqueName("responders") });
      const deadline = Date.now() + 30_000;
      const ctx: Context = { requestId: "conformance-rr-1", deadline, signal: new AbortController().signal };
      const answer = await runWithContext(
        ctx,
        () => within(request(topic, { id: uniqueName("rr"), payload: bytes("quote") }), timeoutMs, "the reply"),
      );
      strictEqual(text(answer.payload), "re: quote");
      strictEqual(answer.headers["x-answer"], "yes");
      strictEqual(answer.headers["x-request-id"], "conformance-rr-1");
      strictEqual(seen.length, 1);
      deepStrictEqual(seen[0].requestId, "conformance-rr-1");
      strictEqual(seen[0].deadline, deadline);
      strictEqual(seen[0].aborted, false);
      ok(seen[0].again?.includes("already answered"), `a second reply: ${seen[0].again}`);

      const id = uniqueName("rr");
      const before = Date.now();
      const tight = await runWithContext(
        ctx,
        () => within(request(topic, { id, payload: bytes("tight") }, { timeoutMs: 3_000 }), timeoutMs, "a reply"),
      );
      strictEqual(tight.headers["x-correlation-id"], id);
      strictEqual(text(tight.payload), "re: tight");
      const tighter = seen[1]?.deadline ?? 0;
      ok(tighter >= before + 3_000 && tighter <= Date.now() + 3_000, `the responder's deadline ${tighter - before}`);
    },
  );

  test(
    "request() rejects with RequestTimeoutError when the caller's deadline passes, ending the responder's Context too",
    ["requestReply"],
    async (t, topic, wait) => {
      await t.createTopic?.(topic, { partitions: 1 });
      const request = requester(t);
      let ended = 0;
      await t.subscriber.subscribe(topic, async () => {
        const signal = currentContext()?.signal;
        ok(signal, "the responder runs in a context");
        if (!signal.aborted) {
          const aborted = new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
          await within(aborted, timeoutMs, "the responder's context to end with the caller's deadline");
        }
        ended++;
        wait.notify();
      }, { group: uniqueName("responders"), concurrency: 3 });

      const bounds: [string, () => Promise<Message>, number][] = [
        ["options.timeoutMs", () => request(topic, { payload: bytes("slow") }, { timeoutMs: 300 }), 300],
        ["the context's deadline", () => {
          const { ctx, dispose } = childContext(undefined, { deadline: Date.now() + 300 });
          return runWithContext(ctx, () => request(topic, { payload: bytes("slow") })).finally(dispose);
        }, 300],
      ];
      for (const [bound, send, budget] of bounds) {
        const started = Date.now();
        const err = await failure(send(), `a request bounded by ${bound}`);
        const took = Date.now() - started;
        ok(err instanceof RequestTimeoutError, `bounded by ${bound}: ${err}`);
        strictEqual(err.transient, true);
        ok(took >= budget - 20 && took < budget + REQUEST_SLACK_MS, `bounded by ${bound}: rejected after ${took} ms`);
      }

      const leaving = new AbortController();
      const leave = setTimeout(() => leaving.abort(new Error("the caller went away")), 100);
      const err = await failure(
        request(topic, { payload: bytes("slow") }, { timeoutMs: 400, signal: leaving.signal }),
        "a request whose signal aborts",
      );
      clearTimeout(leave);
      ok(!(err instanceof RequestTimeoutError) && err.message === "the caller went away", `aborted: ${err}`);
      await wait.until(() => ended >= 3, () => `3 responders to see their context end, got ${ended}`);
    },
  );

  test(
    "request() to a topic nobody subscribes to rejects with NoRespondersError (RequestTimeoutError without noResponders)",
    ["requestReply"],
    async (t, topic) => {
      await t.createTopic?.(topic, { partitions: 1 });
      const request = requester(t);
      const started = Date.now();
      const err = await failure(request(topic, { payload: bytes("anyone?") }, { timeoutMs: 300 }), "the request");
      const took = Date.now() - started;
      strictEqual(err.transient, true);
      if (features.noResponders) {
        ok(err instanceof NoRespondersError, `${err}`);
        ok(took < 300, `told after ${took} ms, not at once`);
      } else {
        ok(err instanceof RequestTimeoutError, `${err}`);
        ok(took < 300 + REQUEST_SLACK_MS, `timed out after ${took} ms`);
      }
    },
  );
}

/** How late after its deadline a request may reject: timers, the broker round trip and a loaded CI machine. */
const REQUEST_SLACK_MS = 1_000;

/**
 * Payload of each backlog message. With 100,000 of them the backlog is 98 MiB of payload alone, so an adapter that
 * pulled it into the process would go well past {@linkcode BACKLOG_MEMORY_BOUND}.
 */
const BACKLOG_PAYLOAD_BYTES = 1024;

/**
 * How far live memory (JS heap plus external ArrayBuffer memory, right after a full GC) may rise above its level at
 * subscribe time during the backpressure case: half the backlog's payload. What a bounded adapter legitimately
 * holds is far less: its prefetch window (kafkajs keeps one fetch response, 4 MiB here with 4 partitions, plus up to
 * 1,000 buffered messages; JetStream pulls at most `concurrency`; NATS Core keeps a bounded pending queue) and, for
 * a non-persistent broker, the publisher's 500 messages in flight. One that held the backlog needs its 98 MiB of
 * payload and more. Garbage is left out (hence the GC before each sample): between collections V8 keeps tens of
 * MiB of it, which says nothing about what the adapter holds on to.
 */
const BACKLOG_MEMORY_BOUND = 48 * 1024 * 1024;

/** Peak growth of live memory over its level at creation, sampled after a full GC every 250 ms. */
interface LiveMemory {
  /** Stops sampling (idempotent) and returns the peak growth in bytes. */
  stop(): number;
}

function liveMemory(): LiveMemory {
  // Deno exposes no gc() without --v8-flags=--expose-gc; this is Node's way of turning it on at run time.
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  const live = () => {
    gc();
    const m = Deno.memoryUsage();
    return m.heapUsed + m.external;
  };
  const baseline = live();
  let peak = baseline;
  const timer = setInterval(() => peak = Math.max(peak, live()), 250);
  return {
    stop() {
      clearInterval(timer);
      return peak - baseline;
    },
  };
}

/** Publishes `count` messages with at most `window` publishes outstanding at once. */
async function publishAll(
  publisher: Publisher,
  topic: string,
  count: number,
  message: (i: number) => OutgoingMessage,
  window = 100,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await publisher.publish(topic, message(next++));
  };
  await Promise.all(Array.from({ length: Math.min(window, count) }, worker));
}

/** How long a ping may wait while the broker is down, in the restart case. */
const PING_BOUND_MS = 2000;

/** The adapter's `ping`; every adapter must have one (it is optional in the type only for older wrappers). */
function pingOf(publisher: Publisher): (signal?: AbortSignal) => Promise<void> {
  const bus = publisher as Partial<PubSub>;
  ok(typeof bus.ping === "function", "the adapter has no ping()");
  return (signal) => bus.ping!(signal);
}

/** Pings every 250 ms until one answers; resolves to when it did (performance.now()), rejects after `deadline`. */
async function pingEventually(ping: (signal: AbortSignal) => Promise<void>, deadline: number): Promise<number> {
  for (;;) {
    try {
      await ping(AbortSignal.timeout(PING_BOUND_MS));
      return performance.now();
    } catch (err) {
      if (performance.now() >= deadline) {
        throw new Error("ping() never answered after the broker restarted", { cause: err });
      }
      await sleep(250);
    }
  }
}

/** Publishes, retrying every 250 ms while the publisher rejects (its broker is still coming back) until `deadline`. */
async function publishEventually(publisher: Publisher, topic: string, msg: OutgoingMessage, deadline: number) {
  for (;;) {
    try {
      return await publisher.publish(topic, msg);
    } catch (err) {
      if (performance.now() >= deadline) throw err;
      await sleep(250);
    }
  }
}

/** Resolves once `value()` has not changed for `quietMs`; rejects after `timeoutMs`. */
async function settled(value: () => number, quietMs: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = value();
  let since = performance.now();
  while (performance.now() - since < quietMs) {
    if (performance.now() > deadline) throw new Error(`deliveries did not settle within ${timeoutMs} ms`);
    await sleep(100);
    if (value() !== last) {
      last = value();
      since = performance.now();
    }
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

/** Waits until a condition over handler-collected state holds, re-checking whenever a handler calls `notify()`. */
interface Waiter {
  notify(): void;
  until(condition: () => boolean, what: () => string): Promise<void>;
}

function waiter(timeoutMs: number): Waiter {
  let check: (() => void) | undefined;
  return {
    notify: () => check?.(),
    async until(condition, what) {
      if (condition()) return;
      const { promise, resolve } = Promise.withResolvers<void>();
      check = () => condition() && resolve();
      try {
        await within(promise, timeoutMs, "the condition").catch((err) => {
          // Named when the bound passes, so the message shows how far the handlers got.
          throw err instanceof WaitTimeoutError ? new WaitTimeoutError(what(), timeoutMs) : err;
        });
      } finally {
        check = undefined;
      }
    },
  };
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.byteLength !== b.byteLength) return Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return i;
  return -1;
}

function uniqueName(prefix: string): string {
  return `${prefix}.${crypto.randomUUID().slice(0, 12)}`;
}

function bytes(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
