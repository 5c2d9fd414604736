import assert from "node:assert/strict";
import { connectPostgres, ensureDatabase } from "./postgres.ts";
import { databaseConformance } from "./testing/conformance.ts";
import { BASE_URL, dropDatabase, freshDatabase, uniqueName, urlFor } from "./testing/fresh_postgres.ts";

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
