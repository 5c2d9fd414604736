import assert from "node:assert/strict";
import type { Database } from "./db.ts";
import { createPglite, type SharedPglite } from "./pglite.ts";
import { databaseConformance, type DatabaseFixture } from "./testing/mod.ts";
import { within } from "../testing/mod.ts";

// Starting PGlite costs ~2–3 s and ~500 MB, so every case shares one instance, each on a fresh schema.
let shared: Promise<SharedPglite> | undefined;
const instance = () => shared ??= createPglite();

function uniqueSchema(): string {
  return `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
}

async function freshSchema(): Promise<DatabaseFixture> {
  const pglite = await instance();
  const schema = uniqueSchema();
  const views: Database[] = [];
  const open = () => {
    const view = pglite.database(schema);
    views.push(view);
    return view;
  };
  return {
    db: open(),
    reopen: open,
    async [Symbol.asyncDispose]() {
      await Promise.all(views.map((view) => view.close()));
      const admin = pglite.database("public");
      await admin.query(`drop schema if exists ${schema} cascade`);
      await admin.close();
    },
  };
}

// PGlite's emscripten runtime turns Postgres' idle statistics flush (a 10 s itimer) into a `setTimeout` armed on first
// activity and kept until it fires or the instance closes. With one instance shared across cases (a fresh one costs
// ~2–3 s and ~500 MB), some case always "leaks" or "completes" that timer, and Deno 2.9 reports timers under both the op
// and the resource sanitizer. That timer is the only reason both are off for the PGlite cases.
const sanitize = { sanitizeOps: false, sanitizeResources: false };

databaseConformance("pglite", freshSchema, sanitize);

Deno.test("pglite: concurrent transactions of two schemas never see each other's search_path", sanitize, async () => {
  await using a = await freshSchema();
  await using b = await freshSchema();
  await a.db.query("create table marks (who text)");
  await b.db.query("create table marks (who text)");
  const work = (db: Database, who: string) =>
    Array.from({ length: 20 }, (_, i) =>
      i % 2
        ? db.transaction(async (tx) => {
          await new Promise((resolve) => setTimeout(resolve, 1));
          await tx.query("insert into marks values ($1)", [who]);
          const [row] = await tx.query("select current_schema() as s");
          return row.s;
        })
        : db.query("insert into marks values ($1) returning current_schema() as s", [who]).then(([row]) => row.s));
  const [seenByA, seenByB] = await Promise.all([Promise.all(work(a.db, "a")), Promise.all(work(b.db, "b"))]);
  const [schemaA] = await a.db.query("select current_schema() as s");
  const [schemaB] = await b.db.query("select current_schema() as s");
  assert.notEqual(schemaA.s, schemaB.s);
  assert.ok(seenByA.every((s) => s === schemaA.s));
  assert.ok(seenByB.every((s) => s === schemaB.s));
  assert.deepEqual(await a.db.query("select distinct who from marks"), [{ who: "a" }]);
  assert.deepEqual(await b.db.query("select distinct who from marks"), [{ who: "b" }]);
});

Deno.test("pglite: another view's statement waits until a running transaction ends", sanitize, async () => {
  await using a = await freshSchema();
  await using b = await freshSchema();
  const events: string[] = [];
  let entered!: () => void;
  const inside = new Promise<void>((resolve) => (entered = resolve));
  const tx = a.db.transaction(async (tx) => {
    entered();
    await tx.query("select 1");
    await new Promise((resolve) => setTimeout(resolve, 30));
    events.push("tx end");
  });
  await within(inside, 5_000, "the transaction to start");
  await b.db.query("select 1").then(() => events.push("other query"));
  await within(tx, 5_000, "the transaction to end");
  assert.deepEqual(events, ["tx end", "other query"]);
});

Deno.test(
  "pglite: using the database instead of tx inside transaction() throws instead of deadlocking",
  sanitize,
  async () => {
    await using fixture = await freshSchema();
    await assert.rejects(fixture.db.transaction(() => fixture.db.query("select 1")), /use the tx handle/);
  },
);

Deno.test("pglite: statements that would change search_path are refused", sanitize, async () => {
  await using fixture = await freshSchema();
  await assert.rejects(fixture.db.query("set search_path to public"), TypeError);
  await assert.rejects(fixture.db.transaction((tx) => tx.query("select set_config('search_path', 'public', false)")));
});

Deno.test("pglite: database() rejects an invalid schema name with a TypeError", sanitize, async () => {
  const pglite = await instance();
  assert.throws(() => pglite.database("Robert'); drop"), TypeError);
});

Deno.test("pglite: closing a view leaves the shared instance and other views open", sanitize, async () => {
  await using fixture = await freshSchema();
  const view = fixture.reopen();
  await view.close();
  await view.close();
  await fixture.db.ping();
});

// Registered last so it runs after every case above.
Deno.test("pglite: the shared instance closes once and refuses views afterwards", sanitize, async () => {
  const pglite = await instance();
  await pglite.close();
  await pglite.close();
  assert.throws(() => pglite.database("late"), /closed/);
});
