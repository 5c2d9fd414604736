import assert from "node:assert/strict";
import postgres from "postgres";
import type { Database } from "./db.ts";
import { connectPostgres, ensureDatabase } from "./postgres.ts";
import { databaseConformance, type DatabaseFixture } from "./testing/conformance.ts";

const BASE_URL = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";

function urlFor(database: string): string {
  const url = new URL(BASE_URL);
  url.pathname = `/${database}`;
  return url.href;
}

function uniqueName(): string {
  return `trellis_dbtest_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
}

async function dropDatabase(name: string): Promise<void> {
  const sql = postgres(urlFor("postgres"), { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await sql.end();
  }
}

/** A fresh database per fixture, dropped on dispose. */
async function freshDatabase(): Promise<DatabaseFixture> {
  const name = uniqueName();
  await ensureDatabase(urlFor(name));
  const handles: Database[] = [];
  const open = () => {
    const db = connectPostgres(urlFor(name), { max: 4, applicationName: "trellis-db-test" });
    handles.push(db);
    return db;
  };
  return {
    db: open(),
    reopen: open,
    async [Symbol.asyncDispose]() {
      await Promise.all(handles.map((db) => db.close()));
      await dropDatabase(name);
    },
  };
}

databaseConformance("postgres", freshDatabase);

Deno.test("ensureDatabase() creates a missing database once, even when called concurrently", async () => {
  const name = uniqueName();
  try {
    const created = await Promise.all([ensureDatabase(urlFor(name)), ensureDatabase(urlFor(name))]);
    assert.equal(created.filter(Boolean).length <= 1, true);
    assert.equal(await ensureDatabase(urlFor(name)), false);
    const db = connectPostgres(urlFor(name));
    try {
      const [row] = await db.query("select current_database() as name");
      assert.equal(row.name, name);
    } finally {
      await db.close();
    }
  } finally {
    await dropDatabase(name);
  }
});

Deno.test("connectPostgres() reports its application name to the server", async () => {
  const db = connectPostgres(BASE_URL, { applicationName: "trellis-probe" });
  try {
    const [row] = await db.query("select current_setting('application_name') as name");
    assert.equal(row.name, "trellis-probe");
  } finally {
    await db.close();
  }
});

Deno.test("connectPostgres() rejects a non-positive max with a RangeError", () => {
  assert.throws(() => connectPostgres(BASE_URL, { max: 0 }), RangeError);
});

Deno.test("ping() rejects when the server cannot be reached within the connect timeout", async () => {
  const db = connectPostgres("postgres://postgres@127.0.0.1:1/postgres", { connectTimeout: 1_000 });
  try {
    await assert.rejects(db.ping());
  } finally {
    await db.close();
  }
});
