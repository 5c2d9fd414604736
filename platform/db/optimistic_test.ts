import assert from "node:assert/strict";
import { retryOnConflict, updateVersioned, VersionConflictError } from "./optimistic.ts";
import { freshDatabase } from "./testing/mod.ts";
import { within } from "../testing/mod.ts";

Deno.test("updateVersioned() writes and bumps the version when it matches, and conflicts when it moved", async () => {
  await using fx = await freshDatabase();
  await fx.db.query("create table accounts (id text primary key, owner text, balance int, version int not null)");
  await fx.db.query("insert into accounts values ('a', 'ann', 10, 1)");

  const next = await updateVersioned(fx.db, { table: "accounts", key: { id: "a" }, version: 1, set: { balance: 7 } });
  assert.equal(next, 2);
  await assert.rejects(
    updateVersioned(fx.db, { table: "accounts", key: { id: "a" }, version: 1, set: { balance: 0 } }),
    (error) =>
      error instanceof VersionConflictError && error.table === "accounts" && error.expected === 1 &&
      error.attempts === 1 && /version conflict on accounts \{"id":"a"\}/.test(error.message),
  );
  await assert.rejects(
    updateVersioned(fx.db, { table: "accounts", key: { id: "gone" }, version: 2, set: { balance: 0 } }),
    VersionConflictError,
  );
  const [row] = await fx.db.query("select owner, balance, version from accounts");
  assert.deepEqual(row, { owner: "ann", balance: 7, version: 2 });
});

Deno.test("updateVersioned() honours a custom version column, several key columns and a schema", async () => {
  await using fx = await freshDatabase();
  await fx.db.query("create schema shop; create table shop.lines (o text, n int, qty int, rev int8 not null)");
  await fx.db.query("insert into shop.lines values ('o1', 1, 2, 5), ('o1', 2, 3, 5)");
  const next = await updateVersioned(fx.db, {
    table: "shop.lines",
    key: { o: "o1", n: 2 },
    version: "5",
    set: { qty: 4 },
    versionColumn: "rev",
  });
  assert.equal(next, 6);
  const rows = await fx.db.query("select n, qty, rev from shop.lines order by n");
  assert.deepEqual(rows, [{ n: 1, qty: 2, rev: "5" }, { n: 2, qty: 4, rev: "6" }]);
});

Deno.test("updateVersioned() refuses identifiers it would have to quote, and an empty key or set", async () => {
  const q = { query: () => Promise.reject(new Error("no statement may be sent")) };
  const base = { table: "t", key: { id: 1 }, version: 1, set: { a: 1 } };
  for (const bad of [{ table: "t; drop table x" }, { key: { 'id" = id or "1': 1 } }, { set: { "a b": 1 } }]) {
    await assert.rejects(updateVersioned(q, { ...base, ...bad }), /Cannot update a versioned row as .* current value/);
  }
  await assert.rejects(updateVersioned(q, { ...base, key: {} }), TypeError);
  await assert.rejects(updateVersioned(q, { ...base, set: {} }), TypeError);
  await assert.rejects(updateVersioned(q, { ...base, set: { version: 3 } }), /leave the version column alone/);
});

Deno.test("retryOnConflict() retries conflicts only, and throws VersionConflictError counting the attempts", async () => {
  let calls = 0;
  const won = await retryOnConflict((attempt) => {
    calls++;
    if (attempt < 3) throw new VersionConflictError("t", { id: 1 }, attempt);
    return Promise.resolve(attempt);
  }, { maxAttempts: 3, baseDelayMs: 1 });
  assert.equal(won, 3);
  assert.equal(calls, 3);

  const last = new VersionConflictError("t", { id: 1 }, 9);
  await assert.rejects(
    retryOnConflict(() => Promise.reject(last), { maxAttempts: 4, baseDelayMs: 1 }),
    (error) =>
      error instanceof VersionConflictError && error.attempts === 4 && error.cause === last &&
      /\(4 attempts\)/.test(error.message),
  );

  calls = 0;
  const other = new Error("constraint");
  await assert.rejects(retryOnConflict(() => (calls++, Promise.reject(other))), (error) => error === other);
  assert.equal(calls, 1);

  await assert.rejects(retryOnConflict(() => Promise.resolve(1), { maxAttempts: 0 }), RangeError);
});

Deno.test("retryOnConflict() stops waiting when its signal aborts", async () => {
  const stop = new AbortController();
  const reason = new Error("shutting down");
  const run = retryOnConflict(() => {
    stop.abort(reason);
    return Promise.reject(new VersionConflictError("t", { id: 1 }, 1));
  }, { maxAttempts: 10, baseDelayMs: 60_000, maxDelayMs: 60_000, signal: stop.signal });
  await assert.rejects(within(run, 5_000, "the aborted retry"), (error) => error === reason);
});
