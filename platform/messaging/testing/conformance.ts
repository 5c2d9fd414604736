import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { type Context, currentContext, runWithContext } from "../../context/context.ts";
import type { Features, Message, Publisher, Subscriber } from "../message.ts";

/** A fresh publisher/subscriber pair for one conformance case. */
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

/** Options for {@linkcode testPubSubConformance}. */
export interface ConformanceOptions {
  /** How long a case waits for the deliveries it expects. @default {20000} */
  timeoutMs?: number;
  /** Where skip reasons are printed. @default {console.log} */
  log?: (line: string) => void;
}

/**
 * Registers the universal publisher/subscriber suite (one `Deno.test` per case, each on a unique topic and group)
 * for an adapter. Cases for features the adapter does not declare are registered as ignored, with the reason
 * printed. Every adapter, the in-memory fake included, must pass it.
 *
 * @example Run the suite against the in-memory broker
 * ```ts ignore
 * import { createMemoryBroker } from "../memory.ts";
 * import { testPubSubConformance } from "./conformance.ts";
 * testPubSubConformance("memory", () => {
 *   const bus = createMemoryBroker();
 *   return Promise.resolve({ publisher: bus, subscriber: bus });
 * }, createMemoryBroker().features);
 * ```
 */
export function testPubSubConformance(
  name: string,
  factory: () => Promise<ConformanceTarget>,
  features: Features,
  options: ConformanceOptions = {},
): void {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const log = options.log ?? ((line: string) => console.log(line));

  const test = (
    title: string,
    needs: (keyof Features)[],
    fn: (t: ConformanceTarget, topic: string, wait: Waiter) => Promise<void>,
  ) => {
    const missing = needs.filter((f) => !features[f]);
    if (missing.length > 0) log(`[${name}] skipping "${title}": the adapter does not declare ${missing.join(", ")}`);
    Deno.test({
      name: `${name}: ${title}`,
      ignore: missing.length > 0,
      async fn() {
        const target = await factory();
        try {
          await fn(target, uniqueName("conformance"), waiter(timeoutMs));
        } finally {
          await target.subscriber.close();
          await target.publisher.close();
          await target.close?.();
        }
      },
    });
  };

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
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      const timer = setTimeout(
        () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`)),
        timeoutMs,
      );
      check = () => condition() && resolve();
      try {
        await promise;
      } finally {
        clearTimeout(timer);
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
