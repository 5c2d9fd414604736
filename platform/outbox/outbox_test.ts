import assert from "node:assert/strict";
import type { Database } from "../db/db.ts";
import { migrate } from "../db/migrate.ts";
import { freshDatabase } from "../db/testing/fresh_postgres.ts";
import { createLogger } from "../log/logger.ts";
import { runWithContext } from "../context/context.ts";
import { claimOnce, enqueue, OUTBOX_MIGRATIONS, type PendingMessage, startRelay } from "./outbox.ts";

const log = createLogger("outbox-test", { write: () => {} });
const text = (m: PendingMessage) => JSON.parse(new TextDecoder().decode(m.payload));

async function outboxDb() {
  const fixture = await freshDatabase();
  await migrate(fixture.db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
  return fixture;
}

/** Resolves once `n` distinct messages were published (a retried batch may publish some twice). */
function collector(n: number, fail?: (m: PendingMessage) => boolean) {
  const got: PendingMessage[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => done = r);
  return {
    got,
    all,
    publish: (m: PendingMessage) => {
      if (fail?.(m)) return Promise.reject(new Error("broker down"));
      got.push(m);
      if (new Set(got.map((g) => g.id)).size === n) done();
      return Promise.resolve();
    },
  };
}

async function insertAndEnqueue(db: Database, n: number, rollback = false) {
  await db.transaction(async (tx) => {
    for (let i = 0; i < n; i++) await enqueue(tx, { topic: "t", key: "k", payload: { i } });
    if (rollback) throw new Error("rolled back");
  }).catch((err) => {
    if (!rollback) throw err;
  });
}

Deno.test("startRelay() publishes committed outbox rows in order, woken by NOTIFY, and marks them published", async () => {
  await using f = await outboxDb();
  const c = collector(5);
  const relay = await startRelay(f.db, { publish: c.publish, log, pollMs: 60_000 });
  try {
    await insertAndEnqueue(f.db, 5);
    await c.all;
    assert.deepEqual(c.got.map((m) => text(m).i), [0, 1, 2, 3, 4]);
    assert.equal(c.got[0].topic, "t");
    assert.equal(c.got[0].key, "k");
    await relay.stop();
    const [row] = await f.db.query<{ n: string }>("select count(*) as n from outbox where published_at is null");
    assert.equal(row.n, "0");
  } finally {
    await relay.stop();
  }
});

Deno.test("enqueue() in a rolled-back transaction publishes nothing", async () => {
  await using f = await outboxDb();
  const c = collector(1);
  const relay = await startRelay(f.db, { publish: c.publish, log, pollMs: 50 });
  try {
    await insertAndEnqueue(f.db, 3, true);
    await insertAndEnqueue(f.db, 1);
    await c.all;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(c.got.length, 1);
  } finally {
    await relay.stop();
  }
});

Deno.test("startRelay() retries after a publish failure without skipping or reordering", async () => {
  await using f = await outboxDb();
  let failures = 2;
  const c = collector(3, (m) => text(m).i === 1 && failures-- > 0);
  const relay = await startRelay(f.db, { publish: c.publish, log, pollMs: 50 });
  try {
    await insertAndEnqueue(f.db, 3);
    await c.all;
    // Row 0 may be published again after a failed batch (at-least-once); the last occurrences stay in order.
    const order = c.got.map((m) => text(m).i);
    assert.deepEqual(order.slice(-3), [0, 1, 2]);
  } finally {
    await relay.stop();
  }
});

Deno.test("enqueue() carries the request id and traceparent but not the deadline", async () => {
  await using f = await outboxDb();
  const c = collector(1);
  const relay = await startRelay(f.db, { publish: c.publish, log, pollMs: 50 });
  try {
    const ctx = {
      requestId: "req-1",
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      deadline: Date.now() + 1000,
      signal: new AbortController().signal,
    };
    await runWithContext(ctx, () => insertAndEnqueue(f.db, 1));
    await c.all;
    assert.equal(c.got[0].headers["x-request-id"], "req-1");
    assert.equal(c.got[0].headers.traceparent, ctx.traceparent);
    assert.equal(c.got[0].headers["x-deadline-ms"], undefined);
  } finally {
    await relay.stop();
  }
});

Deno.test("claimOnce() is true the first time a consumer sees a message id and false after", async () => {
  await using f = await outboxDb();
  const first = await f.db.transaction((tx) => claimOnce(tx, "c", "m-1"));
  const again = await f.db.transaction((tx) => claimOnce(tx, "c", "m-1"));
  const other = await f.db.transaction((tx) => claimOnce(tx, "d", "m-1"));
  assert.deepEqual([first, again, other], [true, false, true]);
  await f.db.transaction(async (tx) => {
    assert.equal(await claimOnce(tx, "c", "m-2"), true);
    throw new Error("rollback");
  }).catch(() => {});
  assert.equal(await f.db.transaction((tx) => claimOnce(tx, "c", "m-2")), true);
});
