import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { createLogger } from "../../log/mod.ts";
import { listDeadLetters, redrive, type RedriveClock } from "./dead_letter_queue.ts";
import { createMemoryBroker } from "../adapters/memory.ts";
import type { Message, OutgoingMessage, Publisher } from "../message.ts";
import { within } from "../../testing/mod.ts";

const logger = createLogger("messaging", { level: "error" });
const unique = (name: string) => `${name}.${crypto.randomUUID().slice(0, 8)}`;

function fakeClock(): RedriveClock & { slept: number[] } {
  let t = 1_000_000;
  const slept: number[] = [];
  return {
    slept,
    now: () => t,
    sleep: (ms) => {
      slept.push(ms);
      t += ms;
      return Promise.resolve();
    },
  };
}

const deadLetter = (source: string, id: string, extra: Record<string, string> = {}): OutgoingMessage => ({
  key: `key-${id}`,
  payload: new TextEncoder().encode(id),
  headers: {
    "x-request-id": `r-${id}`,
    "x-deadline-ms": "1",
    "dlq-error": "Error: boom",
    "dlq-attempts": "5",
    "dlq-source-topic": source,
    "dlq-failed-at": "2026-01-02T00:00:00.000Z",
    "dlq-message-id": id,
    ...extra,
  },
});

Deno.test("redrive() moves dead letters back to their source topic at most ratePerSec, restoring id and headers", async () => {
  const bus = createMemoryBroker({ logger });
  const source = unique("orders");
  const dlq = `${source}.dlq`;
  for (const id of ["a", "b", "c"]) {
    await bus.publish(dlq, deadLetter(source, id, id === "c" ? { "dlq-redrives": "1" } : {}));
  }
  await bus.publish(dlq, deadLetter(source, "d"));
  const clock = fakeClock();
  const publishedAt: number[] = [];
  const publisher: Publisher = {
    features: bus.features,
    publish: (topic, m) => {
      publishedAt.push(clock.now());
      return bus.publish(topic, m);
    },
    close: () => Promise.resolve(),
  };
  const back: Message[] = [];
  await bus.subscribe(source, (m) => void back.push(m), { group: "consumer" });

  const result = await redrive({ from: dlq, subscriber: bus, publisher, ratePerSec: 4, limit: 3, clock });

  deepStrictEqual(result, { moved: 3, stoppedBy: "limit" });
  for (let i = 1; i < publishedAt.length; i++) ok(publishedAt[i] - publishedAt[i - 1] >= 250);
  deepStrictEqual(clock.slept, [250, 250]);
  deepStrictEqual(back.map((m) => [m.id, m.key, m.headers["dlq-redrives"]]), [
    ["a", "key-a", "1"],
    ["b", "key-b", "1"],
    ["c", "key-c", "2"],
  ]);
  deepStrictEqual(back[0].headers, { "x-request-id": "r-a", "dlq-redrives": "1" });
  deepStrictEqual(new TextDecoder().decode(back[0].payload), "a");
  await bus.close();
});

Deno.test("redrive() continues where the previous redrive of its group stopped and stops when idle", async () => {
  const bus = createMemoryBroker({ logger, redelivery: { baseDelayMs: 1 } });
  const source = unique("orders");
  const dlq = `${source}.dlq`;
  for (const id of ["a", "b", "c"]) await bus.publish(dlq, deadLetter(source, id));
  const back: string[] = [];
  await bus.subscribe(source, (m) => void back.push(m.id), { group: "consumer" });
  const clock = fakeClock();
  deepStrictEqual(await redrive({ from: dlq, subscriber: bus, publisher: bus, limit: 1, clock }), {
    moved: 1,
    stoppedBy: "limit",
  });
  const rest = await redrive({ from: dlq, to: `${source}.retry`, subscriber: bus, publisher: bus, idleMs: 20, clock });
  deepStrictEqual(rest, { moved: 2, stoppedBy: "idle" });
  deepStrictEqual(back, ["a"]);
  await bus.close();
});

Deno.test("redrive() rejects on a dead letter without a source topic and leaves it unacknowledged", async () => {
  const bus = createMemoryBroker({ logger });
  const dlq = unique("orphans.dlq");
  await bus.publish(dlq, { payload: new Uint8Array([1]) });
  await rejects(redrive({ from: dlq, subscriber: bus, publisher: bus, clock: fakeClock() }), TypeError);
  await bus.close();
});

Deno.test("redrive() stops when its signal aborts", async () => {
  const bus = createMemoryBroker({ logger });
  const controller = new AbortController();
  const running = redrive({ from: unique("empty.dlq"), subscriber: bus, publisher: bus, signal: controller.signal });
  controller.abort();
  deepStrictEqual(await within(running, 2_000, "redrive() to stop once its signal aborted"), {
    moved: 0,
    stoppedBy: "signal",
  });
  await bus.close();
});

Deno.test("listDeadLetters() summarizes dead letters without moving them", async () => {
  const bus = createMemoryBroker({ logger });
  const source = unique("orders");
  const dlq = `${source}.dlq`;
  for (const id of ["a", "b", "c"]) await bus.publish(dlq, deadLetter(source, id));
  const first = await listDeadLetters(bus, dlq, { limit: 2 });
  deepStrictEqual(first.map((l) => l.id), ["a", "b"]);
  const { timestamp: _ts, ...summary } = first[0];
  deepStrictEqual(summary, {
    id: "a",
    key: "key-a",
    sourceTopic: source,
    error: "Error: boom",
    attempts: 5,
    failedAt: "2026-01-02T00:00:00.000Z",
    redrives: 0,
    bytes: 1,
  });
  const all = await listDeadLetters(bus, dlq, { idleMs: 20 });
  deepStrictEqual(all.map((l) => l.id), ["a", "b", "c"]);
  await bus.close();
});

Deno.test("redrive() and listDeadLetters() reject bad limits with RangeError", async () => {
  const bus = createMemoryBroker({ logger });
  await rejects(redrive({ from: "x.dlq", subscriber: bus, publisher: bus, ratePerSec: 0 }), RangeError);
  await rejects(redrive({ from: "x.dlq", subscriber: bus, publisher: bus, limit: 0 }), RangeError);
  await rejects(listDeadLetters(bus, "x.dlq", { limit: 0 }), RangeError);
  strictEqual((await listDeadLetters(bus, "x.dlq", { idleMs: 1 })).length, 0);
  await bus.close();
});
