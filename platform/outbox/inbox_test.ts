import assert from "node:assert/strict";
import { migrate } from "../db/mod.ts";
import { freshDatabase } from "../db/testing/mod.ts";
import type { Message } from "../messaging/mod.ts";
import { OUTBOX_MIGRATIONS } from "./enqueue.ts";
import { inbox, inboxTx } from "./inbox.ts";

async function outboxDb() {
  const fixture = await freshDatabase();
  await migrate(fixture.db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
  await fixture.db.query("create table effects (message_id text not null)");
  return fixture;
}

const msg = (id: string, attempt = 1): Message => ({
  id,
  headers: {},
  payload: new Uint8Array(),
  attempt,
  timestamp: 0,
});

Deno.test("inbox() runs the handler once per message id and skips a duplicate delivery", async () => {
  await using f = await outboxDb();
  const calls: string[] = [];
  const handler = inbox(f.db, "c")(async (m) => {
    calls.push(m.id);
    await inboxTx().query("insert into effects (message_id) values ($1)", [m.id]);
  });
  await handler(msg("a"));
  await handler(msg("a", 2));
  await handler(msg("b"));
  assert.deepEqual(calls, ["a", "b"]);
  assert.deepEqual(await f.db.query("select message_id from effects order by message_id"), [
    { message_id: "a" },
    { message_id: "b" },
  ]);
  // Another consumer of the same message claims it for itself.
  let other = 0;
  await inbox(() => f.db, "d")(() => void other++)(msg("a"));
  assert.equal(other, 1);
});

Deno.test("inbox() rolls the claim and the effect back when the handler throws, so a redelivery runs it again", async () => {
  await using f = await outboxDb();
  let calls = 0;
  const handler = inbox(f.db, "c")(async (m) => {
    calls++;
    await inboxTx().query("insert into effects (message_id) values ($1)", [m.id]);
    if (m.attempt === 1) throw new Error("handler failed after its write");
  });
  await assert.rejects(Promise.resolve(handler(msg("a"))), /handler failed after its write/);
  assert.deepEqual(await f.db.query("select * from effects"), []);
  assert.deepEqual(await f.db.query("select message_id from inbox"), []);
  await handler(msg("a", 2));
  assert.equal(calls, 2);
  assert.deepEqual(await f.db.query("select message_id from effects"), [{ message_id: "a" }]);
  assert.deepEqual(await f.db.query("select consumer, message_id from inbox"), [{ consumer: "c", message_id: "a" }]);
});

Deno.test("inbox() deduplicates on idOf when given", async () => {
  await using f = await outboxDb();
  const handled: string[] = [];
  const handler = inbox(f.db, "c", { idOf: (m) => m.headers["event-id"] })((m) => void handled.push(m.id));
  await handler({ ...msg("a"), headers: { "event-id": "e-1" } });
  await handler({ ...msg("b"), headers: { "event-id": "e-1" } });
  assert.deepEqual(handled, ["a"]);
});

Deno.test("inboxTx() outside an inbox() handler and inbox() without a consumer throw TypeError", async () => {
  await using f = await outboxDb();
  assert.throws(() => inboxTx(), TypeError);
  assert.throws(() => inbox(f.db, ""), TypeError);
});
