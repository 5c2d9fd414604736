import assert from "node:assert/strict";
import { migrate } from "../db/mod.ts";
import { freshDatabase } from "../db/testing/mod.ts";
import { claimOnce } from "./claim_once.ts";
import { OUTBOX_MIGRATIONS } from "./enqueue.ts";

async function outboxDb() {
  const fixture = await freshDatabase();
  await migrate(fixture.db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
  return fixture;
}

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
