import assert from "node:assert/strict";
import { migrate } from "./migrate.ts";
import { freshDatabase } from "./testing/mod.ts";

Deno.test("migrate() keeps independent migration sets apart by their table, so both may use version 1", async () => {
  await using f = await freshDatabase();
  const lib = await Deno.makeTempDir();
  const app = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${lib}/001_lib.sql`, "create table lib_things (id int)");
    await Deno.writeTextFile(`${app}/001_app.sql`, "create table app_things (id int)");
    assert.equal((await migrate(f.db, lib, { table: "lib_migrations" })).length, 1);
    assert.equal((await migrate(f.db, app)).length, 1);
    assert.equal((await migrate(f.db, lib, { table: "lib_migrations" })).length, 0);
    const tables = await f.db.query<{ n: string }>(
      "select count(*) as n from information_schema.tables where table_name in ('lib_things', 'app_things')",
    );
    assert.equal(tables[0].n, "2");
  } finally {
    await Deno.remove(lib, { recursive: true });
    await Deno.remove(app, { recursive: true });
  }
});

Deno.test("migrate() refuses a bookkeeping table name that is not a plain identifier", async () => {
  await using f = await freshDatabase();
  await assert.rejects(migrate(f.db, ".", { table: "x; drop table y" }), TypeError);
});
