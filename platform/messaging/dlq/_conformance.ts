import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import type { Message, PubSub } from "../message.ts";
import { deadLetter } from "../middleware/mod.ts";
import { DeadLetterHeaders } from "../middleware/mod.ts";
import { type DeadLetterClock, type DeadLetterQueue, openDeadLetterQueue } from "./dead_letter_queue.ts";
import type { StoredLetter } from "./dead_letter_store.ts";

/** A bus with a dead-letter store for one conformance case; `close` closes it and removes what the case made. */
export interface DeadLetterTarget {
  bus: PubSub;
  /** Makes these topics before the case publishes to them (Kafka), when the broker needs it. */
  prepare?(topics: string[]): Promise<void>;
  close(): Promise<void>;
}

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const HOUR = 3_600_000;
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

interface Case {
  bus: PubSub;
  /** `<prefix>.a`, `<prefix>.b`: the source topics; `<prefix>.dlq`: their dead-letter topic. */
  a: string;
  b: string;
  dlq: string;
  /** Parks a message that failed on `source` with `error`, dead-lettered at `failedAt` (epoch ms). */
  park(source: string, id: string, error: string, failedAt: number, payload?: Uint8Array): Promise<void>;
  queue(clock?: DeadLetterClock): DeadLetterQueue;
}

/**
 * The dead-letter operations' contract (see `DeadLetterQueue`), run against one broker's `deadLetters` store. Every
 * case uses topics of its own.
 */
export function testDeadLetterQueueConformance(name: string, connect: () => Promise<DeadLetterTarget>): void {
  const test = (title: string, fn: (c: Case) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      const target = await connect();
      try {
        const prefix = `dlqconf.${crypto.randomUUID().slice(0, 8)}`;
        const [a, b, dlq] = [`${prefix}.a`, `${prefix}.b`, `${prefix}.dlq`];
        await target.prepare?.([a, b, dlq]);
        const bus = target.bus;
        await fn({
          bus,
          a,
          b,
          dlq,
          async park(source, id, error, failedAt, payload = enc(`payload of ${id}`)) {
            const parked = deadLetter(source, {
              publisher: bus,
              maxAttempts: 3,
              topic: () => dlq,
              now: () => failedAt,
            });
            await parked(() => {
              throw new Error(error);
            })({ id, key: `key-${id}`, headers: { "x-tenant": "t-1" }, payload, attempt: 3, timestamp: failedAt });
          },
          queue: (clock) => openDeadLetterQueue(bus, dlq, { clock }),
        });
      } finally {
        await target.close();
      }
    });

  test("list() and get() report each letter's payload, headers, error, attempts, source and time, oldest first, and filter them", async (c) => {
    await c.park(c.a, "m-1", "no such order", T0);
    await c.park(c.b, "m-2", "request timed out", T0 + HOUR);
    await c.park(c.a, "m-3", "no such order", T0 + 2 * HOUR, new Uint8Array([0xff, 0x00, 0x7f]));
    const dlq = c.queue();
    const all = await dlq.list();
    deepStrictEqual(all.map((l) => l.messageId), ["m-1", "m-2", "m-3"]);
    const first = all[0];
    strictEqual(first.sourceTopic, c.a);
    strictEqual(first.error, "Error: no such order");
    strictEqual(first.attempts, 3);
    strictEqual(first.failedAt, new Date(T0).toISOString());
    strictEqual(first.key, "key-m-1");
    strictEqual(first.redrives, 0);
    strictEqual(first.headers["x-tenant"], "t-1");
    strictEqual(first.headers[DeadLetterHeaders.sourceTopic], c.a);
    strictEqual(dec(first.payload), "payload of m-1");
    strictEqual(new Set(all.map((l) => l.id)).size, 3, "ids are unique");

    deepStrictEqual((await dlq.list({ limit: 2 })).map((l) => l.messageId), ["m-1", "m-2"]);
    deepStrictEqual((await dlq.list({ filter: { source: c.a } })).map((l) => l.messageId), ["m-1", "m-3"]);
    deepStrictEqual((await dlq.list({ filter: { error: "timed out" } })).map((l) => l.messageId), ["m-2"]);
    const window = {
      failedAfter: new Date(T0 + HOUR).toISOString(),
      failedBefore: new Date(T0 + 2 * HOUR).toISOString(),
    };
    deepStrictEqual((await dlq.list({ filter: window })).map((l) => l.messageId), ["m-2"]);

    const third = await dlq.get(all[2].id);
    deepStrictEqual(third?.payload, new Uint8Array([0xff, 0x00, 0x7f]));
    strictEqual(third?.messageId, "m-3");
    strictEqual(await dlq.get("no-such-letter"), undefined);
    strictEqual((await dlq.list()).length, 3, "reading moves nothing");
  });

  test("redrive() by id publishes the letter to its source with its original id, key, payload and headers, then removes only it", async (c) => {
    // The original went through the source topic first: a broker deduplicating on the id must still take the redrive.
    await c.bus.publish(c.a, {
      id: "m-1",
      key: "key-m-1",
      headers: { "x-tenant": "t-1" },
      payload: enc("payload of m-1"),
    });
    await c.park(c.a, "m-1", "no such order", T0);
    await c.park(c.a, "m-2", "no such order", T0);
    const dlq = c.queue();
    const [one, two] = await dlq.list();
    strictEqual(await dlq.redrive({ ids: [one.id, "no-such-letter"], ratePerSec: 1000 }), 1);
    deepStrictEqual((await dlq.list()).map((l) => l.id), [two.id]);
    strictEqual(await dlq.get(one.id), undefined);

    const onSource = await collect(c.bus, c.a);
    deepStrictEqual(onSource.map((m) => m.id), ["m-1", "m-1"]);
    const back = onSource[1];
    strictEqual(back.key, "key-m-1");
    strictEqual(dec(back.payload), "payload of m-1");
    strictEqual(back.headers["x-tenant"], "t-1");
    strictEqual(back.headers[DeadLetterHeaders.redrives], "1");
    deepStrictEqual(Object.keys(back.headers).filter((k) => k.startsWith("dlq-")), [DeadLetterHeaders.redrives]);
  });

  test("redrive() by filter paces letters at ratePerSec, reports progress, and a signal stops it with the rest left in place", async (c) => {
    for (const id of ["m-1", "m-2", "m-3"]) await c.park(c.a, id, "boom", T0);
    for (const id of ["m-4", "m-5"]) await c.park(c.b, id, "other", T0);
    let now = 0;
    const sleeps: number[] = [];
    const clock: DeadLetterClock = {
      now: () => now,
      sleep: (ms) => Promise.resolve(void (sleeps.push(ms), now += ms)),
    };
    const dlq = c.queue(clock);
    const progress: string[] = [];
    const moved = await dlq.redrive({
      filter: { error: "boom" },
      ratePerSec: 4,
      onProgress: (p) => progress.push(`${p.redriven}/${p.total}`),
    });
    strictEqual(moved, 3);
    deepStrictEqual(progress, ["1/3", "2/3", "3/3"]);
    deepStrictEqual(sleeps, [250, 250], "the first letter goes at once, the next ones 1/ratePerSec apart");
    deepStrictEqual((await dlq.list()).map((l) => l.messageId), ["m-4", "m-5"]);
    deepStrictEqual((await collect(c.bus, c.a)).map((m) => m.id), ["m-1", "m-2", "m-3"]);

    const stop = new AbortController();
    const stopped = await dlq.redrive({ ratePerSec: 1000, signal: stop.signal, onProgress: () => stop.abort() });
    strictEqual(stopped, 1);
    deepStrictEqual((await dlq.list()).map((l) => l.messageId), ["m-5"]);
  });

  test("purge() refuses to run without ids, filter or all, and removes letters by id, by filter and all of them", async (c) => {
    deepStrictEqual(await c.queue().list(), [], "an empty dead-letter topic lists nothing");
    strictEqual(await c.queue().purge({ all: true }), 0);
    await c.park(c.a, "m-1", "boom", T0);
    await c.park(c.a, "m-2", "boom", T0);
    await c.park(c.b, "m-3", "boom", T0);
    await c.park(c.b, "m-4", "boom", T0);
    const dlq = c.queue();
    await rejects(dlq.purge({}), TypeError);
    const [one] = await dlq.list();
    strictEqual(await dlq.purge({ ids: [one.id] }), 1);
    strictEqual(await dlq.purge({ filter: { source: c.b } }), 2);
    deepStrictEqual((await dlq.list()).map((l) => l.messageId), ["m-2"]);
    strictEqual(await dlq.purge({ all: true }), 1);
    deepStrictEqual(await dlq.list(), []);
    strictEqual(await dlq.purge({ all: true }), 0);
  });

  test("redrive() keeps a letter whose publish failed and skips one without a source topic", async (c) => {
    await c.park(c.a, "m-1", "boom", T0);
    await c.bus.publish(c.dlq, { id: "stray", payload: enc("no dlq headers") });
    const down: PubSub = {
      features: c.bus.features,
      deadLetters: c.bus.deadLetters,
      publish: () => Promise.reject(new Error("broker down")),
      subscribe: () => Promise.reject(new Error("broker down")),
      close: () => Promise.resolve(),
    };
    await rejects(openDeadLetterQueue(down, c.dlq).redrive({ ratePerSec: 1000 }), /broker down/);
    const dlq = c.queue();
    deepStrictEqual((await dlq.list()).map((l) => l.messageId), ["m-1", "stray"]);
    strictEqual(await dlq.redrive({ ratePerSec: 1000 }), 1);
    deepStrictEqual((await dlq.list()).map((l) => l.messageId), ["stray"]);
  });
}

/** What `topic` retains, read through the bus's own store. */
async function collect(bus: PubSub, topic: string): Promise<Message[]> {
  const out: StoredLetter[] = [];
  for await (const l of bus.deadLetters!.scan(topic)) out.push(l);
  ok(out.length > 0, `${topic} holds messages`);
  return out.map((l) => l.message);
}
