// The type-safe SQL prototype (scripts/sqlgen.ts): the generated modules are what the migrations produce today, a
// renamed column is reported (a rejected statement, or a changed row type), and the generated functions run over both
// adapters of the Database contract.
import assert from "node:assert/strict";
import { createPglite, type Database, migrate } from "@trellis/platform/db";
import { freshDatabase } from "@trellis/platform/db/testing";
import { describeQueries, emit, generate, parseQueryFile, QUERY_FILES } from "../../scripts/sqlgen.ts";
import { getOrder } from "../../scripts/sqlgen/orders_queries.ts";
import { lockStock, takeStock } from "../../scripts/sqlgen/inventory_queries.ts";

const ROOT = new URL("../../", import.meta.url);
const load = async (path: string) => parseQueryFile(path, await Deno.readTextFile(new URL(path, ROOT)));

Deno.test("sqlgen --check finds every generated query module up to date with the migrations", async () => {
  const { stale, rejected } = await generate(QUERY_FILES, { check: true });
  assert.deepEqual(rejected, []);
  assert.deepEqual(stale, [], "run deno task sqlgen");
});

Deno.test("sqlgen rejects a query whose column was renamed, naming file, line and Postgres' message", async () => {
  const file = await load("scripts/sqlgen/inventory.sql");
  const { described, rejected } = await describeQueries(file, {
    afterMigrations: "alter table products rename column stock to on_hand",
  });
  assert.deepEqual(described, []);
  assert.deepEqual(rejected, [
    { where: "scripts/sqlgen/inventory.sql:6", name: "lockStock", message: 'column "stock" does not exist' },
    { where: "scripts/sqlgen/inventory.sql:10", name: "takeStock", message: 'column "stock" does not exist' },
  ]);
});

Deno.test("sqlgen changes the row type of a select * when a column is renamed, so its users fail deno check", async () => {
  const file = await load("scripts/sqlgen/orders.sql");
  const before = await describeQueries(file);
  const after = await describeQueries(file, {
    afterMigrations: "alter table orders rename column total_cents to total",
  });
  assert.deepEqual(after.rejected, []);
  const [was, is] = [emit(file, before.described), emit(file, after.described)];
  assert.match(was, /total_cents: string;/);
  assert.doesNotMatch(is, /total_cents/);
  assert.match(is, /total: string;/);
});

Deno.test("parseQueryFile refuses a file without its migrations header or with a bad parameter name", () => {
  assert.throws(() => parseQueryFile("x.sql", "-- name: a :one\nselect 1"), /x\.sql: missing "-- migrations/);
  assert.throws(
    () => parseQueryFile("x.sql", "-- migrations: orders\n-- name: a :one\n-- params: 1x\nselect $1::int"),
    /x\.sql:3: parameter name "1x"/,
  );
});

async function exercise(db: Database): Promise<void> {
  await db.query("insert into products (sku, name, price_cents, stock) values ('sqlgen-a', 'A', 1, 5)");
  await db.transaction(async (tx) => {
    const rows = await lockStock(tx, { skus: ["sqlgen-a", "sqlgen-missing"] });
    assert.deepEqual(rows, [{ sku: "sqlgen-a", stock: 5 }]);
    await takeStock(tx, { sku: "sqlgen-a", quantity: 2 });
  });
  assert.deepEqual(await lockStock(db, { skus: ["sqlgen-a"] }), [{ sku: "sqlgen-a", stock: 3 }]);
  assert.equal(await getOrder(db, { id: "sqlgen-none" }), undefined);
  await db.query(
    `insert into orders (id, customer_id, items, total_cents, payment_token, status, step)
     values ('sqlgen-1', 'c', $1::jsonb, 1200, 't', 'PENDING', 'RESERVING')`,
    [[{ sku: "sqlgen-a", quantity: 2 }]],
  );
  const order = await getOrder(db, { id: "sqlgen-1" });
  assert.equal(order?.total_cents, "1200");
  assert.deepEqual(order?.items, [{ sku: "sqlgen-a", quantity: 2 }]);
  assert.equal(order?.idempotency_key, null);
  assert.ok(order?.deadline_at instanceof Date);
}

async function migrateBoth(db: Database): Promise<void> {
  await migrate(db, new URL("migrations/inventory", ROOT));
  await migrate(db, new URL("migrations/orders", ROOT), { table: "orders_schema_migrations" });
}

Deno.test("the generated functions run over the Postgres adapter", async () => {
  await using fixture = await freshDatabase();
  await migrateBoth(fixture.db);
  await exercise(fixture.db);
});

Deno.test("the generated functions run over the PGlite adapter", async () => {
  const pglite = await createPglite();
  try {
    const db = pglite.database("sqlgen");
    await migrateBoth(db);
    await exercise(db);
  } finally {
    await pglite.close();
  }
});
