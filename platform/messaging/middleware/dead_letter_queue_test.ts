import { deepStrictEqual, rejects } from "node:assert/strict";
import { createLogger } from "../../log/mod.ts";
import { createMemoryBroker } from "../adapters/memory.ts";
import { openDeadLetterQueue } from "../dlq/dead_letter_queue.ts";
import type { OutgoingMessage } from "../message.ts";
import { within } from "../../testing/mod.ts";
import { DeadLetterHeaders } from "./dead_letter_queue.ts";

// What the dlq conformance suite (platform/messaging/dlq/_conformance.ts) leaves out: a redrive counting on from an
// earlier one, dropping the stale deadline, and refusing bad limits.

const logger = createLogger("messaging", { level: "error" });
const unique = (name: string) => `${name}.${crypto.randomUUID().slice(0, 8)}`;

const parked = (source: string, id: string, extra: Record<string, string> = {}): OutgoingMessage => ({
  key: `key-${id}`,
  payload: new TextEncoder().encode(id),
  headers: {
    "x-request-id": `r-${id}`,
    "x-deadline-ms": "1",
    [DeadLetterHeaders.error]: "Error: boom",
    [DeadLetterHeaders.attempts]: "5",
    [DeadLetterHeaders.sourceTopic]: source,
    [DeadLetterHeaders.failedAt]: "2026-01-02T00:00:00.000Z",
    [DeadLetterHeaders.messageId]: id,
    ...extra,
  },
});

Deno.test("a redrive counts on in dlq-redrives and drops the dlq-* headers and the stale deadline, keeping the rest", async () => {
  const bus = createMemoryBroker({ logger });
  try {
    const source = unique("orders");
    const dlq = `${source}.dlq`;
    await bus.publish(dlq, parked(source, "a"));
    await bus.publish(dlq, parked(source, "b", { [DeadLetterHeaders.redrives]: "1" }));
    const queue = openDeadLetterQueue(bus, dlq);
    deepStrictEqual((await queue.list()).map((l) => [l.messageId, l.redrives]), [["a", 0], ["b", 1]]);

    deepStrictEqual(await queue.redrive({ ratePerSec: 1000 }), 2);

    const stored = await within(Array.fromAsync(bus.deadLetters.scan(source)), 2_000, "the source topic read back");
    const back = stored.map((l) => l.message);
    deepStrictEqual(back.map((m) => [m.id, m.key, m.headers]), [
      ["a", "key-a", { "x-request-id": "r-a", [DeadLetterHeaders.redrives]: "1" }],
      ["b", "key-b", { "x-request-id": "r-b", [DeadLetterHeaders.redrives]: "2" }],
    ]);
  } finally {
    await bus.close();
  }
});

Deno.test("list() and redrive() reject a limit or rate that is not positive with RangeError", async () => {
  const bus = createMemoryBroker({ logger });
  try {
    const queue = openDeadLetterQueue(bus, unique("x.dlq"));
    await rejects(queue.list({ limit: 0 }), RangeError);
    await rejects(queue.list({ limit: 1.5 }), RangeError);
    await rejects(queue.redrive({ ratePerSec: 0 }), RangeError);
    await rejects(queue.redrive({ ratePerSec: Infinity }), RangeError);
    deepStrictEqual(await queue.list({ limit: 1 }), []);
  } finally {
    await bus.close();
  }
});
