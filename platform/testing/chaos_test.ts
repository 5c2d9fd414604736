import assert from "node:assert/strict";
import postgres from "postgres";
import { alive, startNats, startPostgres } from "./chaos.ts";
import { waitUntil, within } from "./bounded.ts";

Deno.test("startPostgres() gives a private server that can be killed, restarted, paused and resumed, keeping committed data", async () => {
  await using pg = await startPostgres();
  const sql = postgres(pg.url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    await sql.unsafe("create table kept (n int)");
    await sql.unsafe("insert into kept values (42)");
    const before = pg.pids();
    assert.ok(before.length > 1, `the postmaster and its backends: ${before}`);

    await pg.kill();
    assert.ok(before.every((pid) => !alive(pid)), "every server process is gone after kill()");
    await assert.rejects(sql.unsafe("select 1"));

    await pg.start();
    assert.deepEqual([...await sql.unsafe("select n from kept")], [{ n: 42 }], "a commit survives SIGKILL");

    await pg.pause();
    const hung = sql.unsafe("select 2 as n");
    const first = await Promise.race([hung.then(() => "answered"), new Promise((r) => setTimeout(r, 500, "hung"))]);
    assert.equal(first, "hung", "a paused server does not answer");
    await pg.resume();
    assert.deepEqual(
      [...await within(hung, 5_000, "the query sent while paused to complete after resume()")],
      [{ n: 2 }],
      "the query completes once the server is resumed",
    );

    const [{ fsync }] = await sql.unsafe("show fsync");
    assert.equal(fsync, "on", "the chaos kit's Postgres is durable");
  } finally {
    await sql.end({ timeout: 1 });
  }
});

Deno.test("waitUntil() rejects with what it waited for once the timeout passes", async () => {
  await assert.rejects(waitUntil(() => false, 100, "nothing"), /Timed out after 100 ms waiting for nothing/);
});

Deno.test("startNats() gives a private server that comes back on the same port after SIGKILL", async () => {
  await using nats = await startNats();
  const probe = async () => {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: nats.port });
      const buf = new Uint8Array(4);
      await conn.read(buf);
      conn.close();
      return new TextDecoder().decode(buf) === "INFO";
    } catch {
      return false;
    }
  };
  assert.ok(await probe());
  const [pid] = nats.pids();
  await nats.kill();
  assert.ok(!alive(pid));
  assert.equal(await probe(), false, "nothing answers while it is down");
  await nats.start();
  assert.ok(await probe());
  assert.notEqual(nats.pids()[0], pid);
});
