import assert from "node:assert/strict";
import { connectPostgres } from "./postgres.ts";
import { startPostgres, waitUntil } from "../testing/chaos.ts";

Deno.test("listen() calls onListen again after Postgres is killed and restarted, and notifications flow again", async () => {
  await using pg = await startPostgres();
  const db = connectPostgres(pg.url, { max: 2, connectTimeout: 2_000 });
  try {
    let listened = 0;
    const received: string[] = [];
    const unlisten = await db.listen("events", (payload) => received.push(payload), () => listened++);
    assert.equal(listened, 1);
    await db.query("select pg_notify($1, $2)", ["events", "before"]);
    await waitUntil(() => received.includes("before"), 5_000, "the notification sent before the kill");

    await pg.kill();
    await pg.start();
    await waitUntil(() => listened === 2, 10_000, "onListen after the restart");

    // Once onListen ran the LISTEN is in place again, so the first notification sent now must arrive.
    await db.query("select pg_notify($1, $2)", ["events", "after"]);
    await waitUntil(() => received.includes("after"), 5_000, "the notification sent after the restart");
    await unlisten();
    assert.equal(listened, 2);
  } finally {
    await db.close();
  }
});
