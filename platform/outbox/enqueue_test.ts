import assert from "node:assert/strict";
import { runWithContext } from "../context/mod.ts";
import { migrate } from "../db/mod.ts";
import { freshDatabase } from "../db/testing/mod.ts";
import { createLogger } from "../log/mod.ts";
import { within } from "../testing/mod.ts";
import { enqueue, OUTBOX_MIGRATIONS } from "./enqueue.ts";
import { type PendingMessage, startRelay } from "./relay.ts";

const log = createLogger("outbox-test", { write: () => {} });
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

async function outboxDb() {
  const fixture = await freshDatabase();
  await migrate(fixture.db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
  return fixture;
}

/** A publish function and a promise of the first message it got. */
function firstPublished() {
  const first = Promise.withResolvers<PendingMessage>();
  return {
    first: first.promise,
    publish: (m: PendingMessage) => Promise.resolve(first.resolve(m)),
  };
}

Deno.test("enqueue() hands the relay the payload bytes and headers it was given, unchanged", async () => {
  await using f = await outboxDb();
  const c = firstPublished();
  const relay = await startRelay(f.db, { publish: c.publish, logger: log, pollMs: 50 });
  try {
    const payload = new TextEncoder().encode('{"type":"orders.created.v1", "note":"caf\u00e9 ☕"}');
    const id = crypto.randomUUID();
    await f.db.transaction((tx) =>
      enqueue(tx, { topic: "t", id, key: "k", headers: { "content-type": "application/json" }, payload })
    );
    const got = await within(c.first, 5_000, "the enqueued message published");
    assert.deepEqual(got, { id, topic: "t", key: "k", headers: { "content-type": "application/json" }, payload });
  } finally {
    await relay.stop();
  }
});

Deno.test("enqueue() refuses a payload that is not UTF-8 bytes with a TypeError, writing nothing", async () => {
  await using f = await outboxDb();
  await assert.rejects(
    f.db.transaction((tx) => enqueue(tx, { topic: "t", payload: new Uint8Array([0xff, 0xfe]) })),
    TypeError,
  );
  await assert.rejects(
    f.db.transaction((tx) => enqueue(tx, { topic: "t", payload: { not: "bytes" } as unknown as Uint8Array })),
    TypeError,
  );
  assert.deepEqual(await f.db.query("select id from outbox"), []);
});

Deno.test("enqueue() carries the request id and traceparent but not the deadline", async () => {
  await using f = await outboxDb();
  const c = firstPublished();
  const relay = await startRelay(f.db, { publish: c.publish, logger: log, pollMs: 50 });
  try {
    const ctx = {
      requestId: "req-1",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      deadline: Date.now() + 1000,
      signal: new AbortController().signal,
    };
    await runWithContext(ctx, () => f.db.transaction((tx) => enqueue(tx, { topic: "t", payload: json({}) })));
    const got = await within(c.first, 5_000, "the enqueued message published");
    assert.equal(got.headers["x-request-id"], "req-1");
    assert.equal(got.headers.traceparent, ctx.traceparent);
    assert.equal(got.headers["x-deadline-ms"], undefined);
  } finally {
    await relay.stop();
  }
});

Deno.test("enqueue() stores headers as a jsonb object, and migration 003 turns rows written as a jsonb string into one", async () => {
  await using f = await freshDatabase();
  // The schema as it was before 003, holding a row written the old way (headers bound as JSON text).
  const before = await Deno.makeTempDir();
  try {
    for (const file of ["001_outbox_inbox.sql", "002_outbox_unpublished_topic.sql"]) {
      await Deno.copyFile(new URL(file, OUTBOX_MIGRATIONS.dir), `${before}/${file}`);
    }
    await migrate(f.db, before, { table: OUTBOX_MIGRATIONS.table });
  } finally {
    await Deno.remove(before, { recursive: true });
  }
  await f.db.query(
    "insert into outbox (id, topic, key, headers, payload) values ($1, 't', null, to_jsonb($2::text), '{}')",
    [crypto.randomUUID(), JSON.stringify({ "x-request-id": "old" })],
  );
  await migrate(f.db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
  await f.db.transaction((tx) => enqueue(tx, { topic: "t", headers: { "x-request-id": "new" }, payload: json({}) }));
  const rows = await f.db.query<{ kind: string; rid: string }>(
    "select jsonb_typeof(headers) as kind, headers->>'x-request-id' as rid from outbox order by seq",
  );
  assert.deepEqual(rows, [{ kind: "object", rid: "old" }, { kind: "object", rid: "new" }]);
});
