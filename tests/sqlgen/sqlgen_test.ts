// Type-safe SQL (scripts/sqlgen.ts): every service's queries.sql is checked against its migrations and its generated
// queries.ts is up to date, a renamed column is reported (a rejected statement, or a changed row type), no service
// runs SQL past the generator, and the generated functions run over both adapters of the Database contract.
import assert from "node:assert/strict";
import { createPglite, type Database, migrate } from "@trellis/platform/db";
import { freshDatabase } from "@trellis/platform/db/testing";
import { describeQueries, emit, generate, parseQueryFile, queryFiles } from "../../scripts/sqlgen.ts";
import { getOrder } from "../../services/orders/queries.ts";
import { readStock, restock } from "../../services/inventory/queries.ts";

const ROOT = new URL("../../", import.meta.url);
const load = async (path: string) => parseQueryFile(path, await Deno.readTextFile(new URL(path, ROOT)));
const lineOf = async (path: string, name: string) => (await load(path)).queries.find((q) => q.name === name)!.line;

Deno.test("sqlgen --check finds every service's queries.sql valid and its generated queries.ts up to date", async () => {
  const files = await queryFiles();
  assert.deepEqual(files, [
    "services/auth/queries.sql",
    "services/inventory/queries.sql",
    "services/orders/queries.sql",
    "services/payments/queries.sql",
  ]);
  const { stale, rejected } = await generate(files, { check: true });
  assert.deepEqual(rejected, []);
  assert.deepEqual(stale, [], "run deno task sqlgen");
});

Deno.test("no service runs SQL except through the functions sqlgen generated from its queries.sql", async () => {
  // A query call, a tagged template or raw text handed to a driver: SQL that nothing checks against the schema.
  const unchecked = /\.query\s*[<(]|\.unsafe\s*\(|\bsql\s*`/;
  // The gateway hands the SDK's PostgresIdempotencyStore its database (open only once started): SQL passed through,
  // none written.
  const passThrough =
    /^\s*const keys: Queryable = \{ query: \(text, params, options\) => db\.query\(text, params, options\) \};$/;
  const offenders: string[] = [];
  const walk = async (dir: URL, rel: string) => {
    for (const entry of Deno.readDirSync(dir)) {
      const path = `${rel}${entry.name}`;
      if (entry.isDirectory) await walk(new URL(`${entry.name}/`, dir), `${path}/`);
      else if (path.endsWith(".ts") && !path.endsWith("_test.ts") && !path.endsWith("/queries.ts")) {
        const lines = (await Deno.readTextFile(new URL(entry.name, dir))).split("\n");
        lines.forEach((l, i) => {
          if (unchecked.test(l) && !passThrough.test(l)) offenders.push(`${path}:${i + 1}: ${l.trim()}`);
        });
      }
    }
  };
  await walk(new URL("services/", ROOT), "services/");
  assert.deepEqual(offenders, [], "move these statements into the service's queries.sql and run deno task sqlgen");
});

Deno.test("sqlgen rejects a query whose column was renamed, naming file, line and Postgres' message", async () => {
  const path = "services/inventory/queries.sql";
  const { described, rejected } = await describeQueries(await load(path), {
    afterMigrations: "alter table products rename column stock to on_hand",
  });
  const names = [
    "listAllProducts",
    "listProducts",
    "readStock",
    "setStockIfVersion",
    "restock",
    "listCountedProducts",
    "lockProductCount",
    "setStock",
  ];
  assert.deepEqual(
    rejected.map((r) => r.name),
    names,
  );
  for (const r of rejected) {
    assert.match(r.message, /^column "stock" (of relation "products" )?does not exist$/);
    assert.match(r.where, new RegExp(`^${path}:\\d+$`));
  }
  assert.equal(rejected[2].where, `${path}:${await lineOf(path, "readStock")}`);
  assert.deepEqual(described.map((d) => d.name), [
    "getReservation",
    "lockReservation",
    "insertReservation",
    "markReleased",
    "reservedBySku",
    "settledReservations",
    "outboxHistory",
  ]);
});

Deno.test("sqlgen rejects a renamed column inside an expression, as the keystore's epoch-millisecond reads use it", async () => {
  const { rejected } = await describeQueries(await load("services/auth/queries.sql"), {
    afterMigrations: "alter table signing_keys rename column activates_at to active_from",
  });
  assert.deepEqual(rejected.map((r) => r.name), ["liveKeys", "insertKey", "scheduleRetirement", "listAllKeys"]);
  for (const r of rejected) {
    assert.match(r.message, /^column "activates_at" (of relation "signing_keys" )?does not exist$/);
  }
});

Deno.test("sqlgen changes the row type of a select * when a column is renamed, so its users fail deno check", async () => {
  const file = await load("services/orders/queries.sql");
  const before = await describeQueries(file);
  const after = await describeQueries(file, {
    afterMigrations: "alter table orders rename column created_at to placed_at",
  });
  assert.deepEqual(after.rejected, []);
  // The row type of getOrder (a select * of orders); the outbox's own created_at is in other row types of the file.
  const getOrderRow = (code: string) => code.match(/export type GetOrderRow = \{[^}]*\}/)![0];
  const [was, is] = [getOrderRow(emit(file, before.described)), getOrderRow(emit(file, after.described))];
  assert.match(was, /created_at: Date;/);
  assert.doesNotMatch(is, /created_at/);
  assert.match(is, /placed_at: Date;/);
});

Deno.test("sqlgen types nullable parameters and nonnull expression columns as the query file says", async () => {
  const file = parseQueryFile(
    "x.sql",
    [
      "-- migrations: orders",
      "-- name: stamp :one",
      "-- params: id, key?",
      "-- nonnull: db_now",
      "select now() as db_now, now() as maybe, idempotency_key from orders where id = $1 and idempotency_key = $2",
    ].join("\n"),
  );
  const { described, rejected } = await describeQueries(file);
  assert.deepEqual(rejected, []);
  const code = emit(file, described);
  assert.match(code, /params: \{ id: string; key: string \| null \}/);
  assert.match(code, /db_now: Date;/);
  assert.match(code, /maybe: Date \| null;/);
  assert.match(code, /idempotency_key: string \| null;/);
  const typo = parseQueryFile("y.sql", "-- migrations: orders\n-- name: t :one\n-- nonnull: nope\nselect 1 as one");
  assert.deepEqual((await describeQueries(typo)).rejected, [
    { where: "y.sql:4", name: "t", message: '"-- nonnull:" names nope, not a result column' },
  ]);
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
    const rows = await readStock(tx, { skus: ["sqlgen-a", "sqlgen-missing"] });
    assert.deepEqual(rows, [{ sku: "sqlgen-a", stock: 5, version: 1 }]);
    await restock(tx, { sku: "sqlgen-a", quantity: 2 });
  });
  assert.deepEqual(await readStock(db, { skus: ["sqlgen-a"] }), [{ sku: "sqlgen-a", stock: 7, version: 2 }]);
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

Deno.test("parseQueryFile() ends a statement at its semicolon: the comment introducing the next query stays out of it", () => {
  const file = parseQueryFile(
    "z.sql",
    "-- migrations: orders\n-- name: first :exec\nselect 1;\n\n-- Why the second query exists.\n-- name: second :exec\nselect 2;\n",
  );
  assert.deepEqual(file.queries.map((q) => q.sql), ["select 1", "select 2"]);
});
