import { deepStrictEqual, rejects, throws } from "node:assert/strict";
import type { Message } from "../message.ts";
import { inbox } from "./inbox.ts";

const msg = (id: string): Message => ({ id, headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 });

function memoryInbox() {
  const ids = new Set<string>();
  return {
    ids,
    seen: (id: string) => Promise.resolve(ids.has(id)),
    remember: (id: string) => Promise.resolve(void ids.add(id)),
  };
}

Deno.test("inbox() skips a message it has seen and remembers one after the handler succeeded", async () => {
  const store = memoryInbox();
  const handled: string[] = [];
  const handler = inbox(store)((m) => void handled.push(m.id));
  await handler(msg("a"));
  await handler(msg("a"));
  await handler(msg("b"));
  deepStrictEqual(handled, ["a", "b"]);
  deepStrictEqual([...store.ids], ["a", "b"]);
});

Deno.test("inbox() does not remember a message whose handler threw", async () => {
  const store = memoryInbox();
  await rejects(Promise.resolve(inbox(store)(() => Promise.reject(new Error("boom")))(msg("a"))), /boom/);
  deepStrictEqual([...store.ids], []);
});

Deno.test("inbox() deduplicates on idOf when given", async () => {
  const store = memoryInbox();
  const handled: string[] = [];
  const handler = inbox({ ...store, idOf: (m) => m.headers["event-id"] })((m) => void handled.push(m.id));
  await handler({ ...msg("a"), headers: { "event-id": "e-1" } });
  await handler({ ...msg("b"), headers: { "event-id": "e-1" } });
  deepStrictEqual(handled, ["a"]);
});

Deno.test("inbox() rejects a store without seen or remember with TypeError", () => {
  throws(() => inbox({ seen: () => Promise.resolve(false) } as never), TypeError);
});
