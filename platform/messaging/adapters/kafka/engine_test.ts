import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createLogger } from "../../../log/mod.ts";
import { waitUntil, within } from "../../../testing/mod.ts";
import { createLimiter } from "../../limiter.ts";
import type { Message, MessageHandler } from "../../message.ts";
import type { ConsumerDriver, DriverSink, FetchedRecord } from "./driver.ts";
import { type ConsumerEngineOptions, superviseConsumer } from "./engine.ts";

const logger = createLogger("messaging", { write: () => {} });

/** A consumer that fetches nothing by itself: the test feeds records and reads back what the engine did. */
class FakeDriver implements ConsumerDriver<FetchedRecord> {
  topics: string[] = [];
  paused = false;
  pauses = 0;
  resumes = 0;
  /** `topic/partition` → committed offsets (the offset after the last handled record), in commit order. */
  readonly committed = new Map<string, bigint[]>();
  stopped = false;

  constructor(readonly sink: DriverSink<FetchedRecord>, readonly partitions: number, readonly failStart?: Error) {}

  start(topics: readonly string[]): Promise<void> {
    if (this.failStart) return Promise.reject(this.failStart);
    this.topics = [...topics];
    this.sink.assigned(
      topics.flatMap((topic) => Array.from({ length: this.partitions }, (_, partition) => ({ topic, partition }))),
    );
    return Promise.resolve();
  }
  pause(): void {
    this.paused = true;
    this.pauses++;
  }
  resume(): void {
    this.paused = false;
    this.resumes++;
  }
  commit(records: readonly FetchedRecord[]): Promise<void> {
    for (const r of records) {
      const tp = `${r.topic}/${r.partition}`;
      this.committed.set(tp, [...this.committed.get(tp) ?? [], r.offset + 1n]);
    }
    return Promise.resolve();
  }
  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }

  /** Hands the engine a record with `id`, `key` and `bytes` of payload. */
  feed(topic: string, partition: number, offset: number, key?: string, bytes = 0): void {
    const payload = new Uint8Array(bytes);
    this.sink.receive({
      topic,
      partition,
      offset: BigInt(offset),
      message: { id: `${topic}/${partition}/${offset}`, key, headers: {}, payload, timestamp: 0 },
      block: { size: bytes, unfinished: 0 },
    });
  }

  lastCommitted(topic: string, partition = 0): bigint | undefined {
    return this.committed.get(`${topic}/${partition}`)?.at(-1);
  }
}

interface Rig {
  sub: ReturnType<typeof superviseConsumer<FetchedRecord>>;
  drivers: FakeDriver[];
  topics: string[];
  readonly driver: FakeDriver;
}

function rig(
  handler: MessageHandler,
  options: Partial<ConsumerEngineOptions<FetchedRecord>> & {
    concurrency?: number;
    partitions?: number;
    topics?: string[];
  } = {},
  failStarts: (Error | undefined)[] = [],
): Rig {
  const drivers: FakeDriver[] = [];
  const { concurrency = 1, partitions = 1, topics = ["orders"], ...rest } = options;
  const sub = superviseConsumer<FetchedRecord>({
    topic: "orders",
    pattern: undefined,
    group: "g",
    handler,
    limiter: createLimiter(concurrency),
    maxBufferedMessages: 1000,
    maxBufferedBytes: 1 << 20,
    commitIntervalMs: 0,
    patternRefreshMs: 10,
    joinTimeoutMs: 1000,
    redelivery: { baseDelayMs: 1, maxDelayMs: 1 },
    restart: { baseDelayMs: 1, maxDelayMs: 1 },
    logger,
    driver: (sink) => {
      const d = new FakeDriver(sink, partitions, failStarts.shift());
      drivers.push(d);
      return d;
    },
    listTopics: () => Promise.resolve([...topics]),
    ...rest,
  });
  return {
    sub,
    drivers,
    topics,
    get driver() {
      return drivers.at(-1)!;
    },
  };
}

/** A handler call the test ends when it likes. */
interface Call {
  msg: Message;
  done: PromiseWithResolvers<void>;
}

function gatedHandler(): { handler: MessageHandler; calls: Call[]; running: () => number } {
  const calls: Call[] = [];
  let running = 0;
  const handler = async (msg: Message) => {
    const done = Promise.withResolvers<void>();
    calls.push({ msg, done });
    running++;
    try {
      await within(done.promise, 10_000, "the test to finish this handler call");
    } finally {
      running--;
    }
  };
  return { handler, calls, running: () => running };
}

const ids = (calls: Call[]) => calls.map((c) => c.msg.id);

Deno.test("superviseConsumer() runs one key's records one at a time in order, and different keys concurrently up to the limit", async () => {
  const { handler, calls, running } = gatedHandler();
  const r = rig(handler, { concurrency: 2 });
  await within(r.sub.ready, 1000, "the subscription to start");
  r.driver.feed("orders", 0, 0, "a");
  r.driver.feed("orders", 0, 1, "a");
  r.driver.feed("orders", 0, 2, "b");
  r.driver.feed("orders", 0, 3, "c");
  await waitUntil(() => calls.length === 2, 1000, "two handlers to start");
  // a/0 and b/2 run; a/1 waits for its key, c/3 for a slot.
  deepStrictEqual(ids(calls), ["orders/0/0", "orders/0/2"]);
  strictEqual(running(), 2);
  calls[1].done.resolve();
  await waitUntil(() => calls.length === 3, 1000, "the next record to start");
  strictEqual(calls[2].msg.id, "orders/0/3", "a record of another key takes the free slot, not a/1");
  calls[0].done.resolve();
  await waitUntil(() => calls.length === 4, 1000, "the key's next record to start");
  strictEqual(calls[3].msg.id, "orders/0/1");
  strictEqual(running(), 2);
  calls[2].done.resolve();
  calls[3].done.resolve();
  await waitUntil(() => r.driver.lastCommitted("orders") === 4n, 1000, "offset 4 to be committed");
  await within(r.sub.close(), 1000, "close()");
});

Deno.test("superviseConsumer() commits a partition only past its contiguous handled offsets", async () => {
  const { handler, calls } = gatedHandler();
  const r = rig(handler, { concurrency: 3, partitions: 2 });
  await within(r.sub.ready, 1000, "the subscription to start");
  r.driver.feed("orders", 0, 10, "a");
  r.driver.feed("orders", 0, 11, "b");
  r.driver.feed("orders", 1, 5, "c");
  await waitUntil(() => calls.length === 3, 1000, "three handlers to start");
  calls[1].done.resolve();
  calls[2].done.resolve();
  await waitUntil(() => r.driver.lastCommitted("orders", 1) === 6n, 1000, "partition 1 to commit offset 6");
  strictEqual(r.driver.lastCommitted("orders", 0), undefined, "offset 11 is handled but 10 is not");
  calls[0].done.resolve();
  await waitUntil(() => r.driver.lastCommitted("orders", 0) === 12n, 1000, "partition 0 to commit offset 12");
  deepStrictEqual(r.driver.committed.get("orders/0"), [12n]);
  await within(r.sub.close(), 1000, "close()");
});

Deno.test("superviseConsumer() retries a failing record in place with attempt + 1 while its key waits and its offset stays uncommitted", async () => {
  const seen: string[] = [];
  let failures = 2;
  const r = rig((msg) => {
    seen.push(`${msg.id}#${msg.attempt}`);
    if (msg.id === "orders/0/0" && failures-- > 0) throw new Error("not yet");
  });
  await within(r.sub.ready, 1000, "the subscription to start");
  r.driver.feed("orders", 0, 0, "a");
  r.driver.feed("orders", 0, 1, "a");
  await waitUntil(() => r.driver.lastCommitted("orders") === 2n, 1000, "both offsets to be committed");
  deepStrictEqual(seen, ["orders/0/0#1", "orders/0/0#2", "orders/0/0#3", "orders/0/1#1"]);
  await within(r.sub.close(), 1000, "close()");
});

Deno.test("superviseConsumer() pauses the driver at maxBufferedMessages and at maxBufferedBytes, and resumes it once there is room", async () => {
  const { handler, calls } = gatedHandler();
  const r = rig(handler, { concurrency: 4, maxBufferedMessages: 3, maxBufferedBytes: 100 });
  await within(r.sub.ready, 1000, "the subscription to start");
  r.driver.feed("orders", 0, 0, "a");
  r.driver.feed("orders", 0, 1, "b");
  strictEqual(r.driver.paused, false);
  r.driver.feed("orders", 0, 2, "c");
  strictEqual(r.driver.paused, true, "three records held");
  await waitUntil(() => calls.length === 3, 1000, "three handlers to start");
  calls[1].done.resolve();
  // Offset 1 is handled, but behind unhandled offset 0 it is still held for the commit position.
  await new Promise((resolve) => setTimeout(resolve, 20));
  strictEqual(r.driver.paused, true, "offset 1 handled but not committable");
  calls[0].done.resolve();
  await waitUntil(() => !r.driver.paused, 1000, "the driver to resume");
  strictEqual(r.driver.resumes, 1);
  r.driver.feed("orders", 0, 3, "d", 150);
  strictEqual(r.driver.paused, true, "150 payload bytes unfinished");
  await waitUntil(() => calls.length === 4, 1000, "the big record's handler to start");
  calls[2].done.resolve();
  calls[3].done.resolve();
  await waitUntil(() => !r.driver.paused, 1000, "the driver to resume");
  await within(r.sub.close(), 1000, "close()");
});

Deno.test("superviseConsumer() restarts a pattern subscription's consumer on a new matching topic", async () => {
  const seen: string[] = [];
  const r = rig((msg) => void seen.push(msg.id), {
    topic: "orders.>",
    pattern: /^orders\..+$/,
    topics: ["orders.eu", "payments", "__consumer_offsets"],
  });
  await within(r.sub.ready, 1000, "the subscription to start");
  deepStrictEqual(r.driver.topics, ["orders.eu"]);
  const first = r.driver;
  r.topics.push("orders.us");
  await waitUntil(() => r.drivers.length === 2, 1000, "a consumer on the new topic");
  ok(first.stopped, "the first consumer stopped");
  deepStrictEqual(r.driver.topics, ["orders.eu", "orders.us"]);
  r.driver.feed("orders.us", 0, 0);
  await waitUntil(() => seen.length === 1, 1000, "the new topic's record");
  await within(r.sub.close(), 1000, "close()");
});

Deno.test("superviseConsumer() replaces a consumer that failed, and retries one that fails to start", async () => {
  const seen: string[] = [];
  const r = rig((msg) => void seen.push(msg.id));
  await within(r.sub.ready, 1000, "the subscription to start");
  const first = r.driver;
  first.sink.fail(new Error("lost the group"));
  await waitUntil(() => r.drivers.length === 2, 1000, "a second consumer");
  ok(first.stopped);
  r.driver.feed("orders", 0, 0);
  await waitUntil(() => seen.length === 1, 1000, "a record through the second consumer");
  await within(r.sub.close(), 1000, "close()");

  const down = new Error("broker down");
  const late = rig(() => {}, {}, [undefined, down, down]);
  await within(late.sub.ready, 1000, "the subscription to start");
  late.driver.sink.fail(new Error("crashed"));
  await waitUntil(() => late.drivers.length === 4 && late.driver.topics.length === 1, 1000, "a fourth consumer");
  ok(late.drivers.every((d, i) => i === 3 || d.stopped), "every replaced consumer stopped");
  await within(late.sub.close(), 1000, "close()");
});

Deno.test("superviseConsumer() reports a first consumer that does not start, and one that does not join in time", async () => {
  const r = rig(() => {}, {}, [new Error("no broker")]);
  await rejects(within(r.sub.ready, 1000, "ready to reject"), /no broker/);
  await within(r.sub.close(), 1000, "close()");
  ok(r.driver.stopped);

  const slow = rig(() => {}, {
    joinTimeoutMs: 20,
    driver: (sink) => Object.assign(new FakeDriver(sink, 1), { start: () => new Promise<void>(() => {}) }),
  });
  await rejects(within(slow.sub.ready, 1000, "ready to reject"), /did not join group "g" in 20 ms/);
  await within(slow.sub.close(), 1000, "close()");
});

Deno.test("superviseConsumer() close() lets running handlers finish and commits them, drops queued records, and stops the driver", async () => {
  const { handler, calls } = gatedHandler();
  const r = rig(handler);
  await within(r.sub.ready, 1000, "the subscription to start");
  for (let i = 0; i < 3000; i++) r.driver.feed("orders", 0, i, i % 2 ? "k" : undefined);
  await waitUntil(() => calls.length === 1, 1000, "the first handler to start");
  const closed = r.sub.close();
  strictEqual(r.driver.paused, true, "fetching paused at once");
  calls[0].done.resolve();
  await within(closed, 5000, "close()");
  strictEqual(calls.length, 1, "queued records are dropped, not handled");
  deepStrictEqual(r.driver.committed.get("orders/0"), [1n]);
  ok(r.driver.stopped);
});

Deno.test("superviseConsumer() stops retrying a revoked partition's record and never commits that partition", async () => {
  let attempts = 0;
  const r = rig(() => {
    attempts++;
    throw new Error("always");
  }, { redelivery: { baseDelayMs: 5, maxDelayMs: 5 }, partitions: 2 });
  await within(r.sub.ready, 1000, "the subscription to start");
  r.driver.feed("orders", 1, 0);
  await waitUntil(() => attempts >= 2, 1000, "a retry");
  r.driver.sink.assigned([{ topic: "orders", partition: 0 }]);
  const after = attempts;
  await new Promise((resolve) => setTimeout(resolve, 30));
  ok(attempts <= after + 1, `no retries after the revocation: ${attempts} attempts, ${after} before`);
  // A record of the revoked partition that was already on its way is not taken.
  r.driver.feed("orders", 1, 1);
  await within(r.sub.close(), 1000, "close()");
  strictEqual(r.driver.committed.size, 0);
});

Deno.test("superviseConsumer() resumes after thousands of records through one partition (its commit log compacts)", async () => {
  let handled = 0;
  const r = rig(() => void handled++, { concurrency: 8, maxBufferedMessages: 100 });
  await within(r.sub.ready, 1000, "the subscription to start");
  for (let offset = 0; offset < 5000; offset++) {
    await waitUntil(() => !r.driver.paused, 1000, `room for offset ${offset}`, 1);
    r.driver.feed("orders", 0, offset, `k${offset % 16}`);
  }
  await waitUntil(() => r.driver.lastCommitted("orders") === 5000n, 1000, "offset 5000 to be committed");
  strictEqual(handled, 5000);
  strictEqual(r.driver.paused, false);
  await within(r.sub.close(), 1000, "close()");
});

Deno.test("superviseConsumer() commits at once when the group starts rebalancing, and keeps the queue of a partition the rebalance leaves it", async () => {
  const { handler, calls, running } = gatedHandler();
  const r = rig(handler, { commitIntervalMs: 60_000, partitions: 2 });
  await within(r.sub.ready, 1000, "the subscription to start");
  r.driver.feed("orders", 0, 0, "a");
  r.driver.feed("orders", 0, 1, "a");
  await waitUntil(() => calls.length === 1, 1000, "the first handler to start");
  calls[0].done.resolve();
  await waitUntil(() => calls.length === 2, 1000, "the second handler to start");
  strictEqual(r.driver.lastCommitted("orders"), undefined, "not before the commit interval");
  r.driver.sink.rebalancing();
  await waitUntil(() => r.driver.lastCommitted("orders") === 1n, 1000, "offset 1 to be committed at once");
  // Partition 0 stays, partition 1 goes: the running record of partition 0 still counts and commits.
  r.driver.sink.assigned([{ topic: "orders", partition: 0 }]);
  // The client fetches again from the committed offset: a record already taken is not taken twice.
  r.driver.feed("orders", 0, 1, "a");
  calls[1].done.resolve();
  await waitUntil(() => running() === 0, 1000, "the second handler to finish");
  r.driver.sink.rebalancing();
  await waitUntil(() => r.driver.lastCommitted("orders") === 2n, 1000, "offset 2 to be committed");
  strictEqual(calls.length, 2);
  await within(r.sub.close(), 1000, "close()");
});
