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

const LOAD = new URL("./testing/postgres_load.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

interface LoadReport {
  ok: number;
  failed: Record<string, number>;
}

/** The load script in a child process; `latest` is its last report, `exited` resolves with its stderr if it dies. */
function startLoad(url: string, ...flags: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, LOAD, url, ...flags],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let latest: LoadReport = { ok: 0, failed: {} };
  const reading = (async () => {
    let buffered = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) if (line.startsWith("{")) latest = JSON.parse(line);
    }
  })();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.then((s) => (exited = true, s));
  return {
    get latest() {
      return latest;
    },
    get exited() {
      return exited;
    },
    stderr,
    async [Symbol.asyncDispose]() {
      if (!exited) child.kill("SIGKILL");
      await Promise.all([status, reading, stderr]);
    },
  };
}

type Load = ReturnType<typeof startLoad>;
type PrivatePostgres = Awaited<ReturnType<typeof startPostgres>>;

/** Kills Postgres under `load` and restarts it, `rounds` times, each time waiting for 300 more successful calls. */
async function killUnderLoad(pg: PrivatePostgres, load: Load, rounds: number): Promise<void> {
  const alive = async (what: string) => {
    if (load.exited) throw new Error(`the load process died ${what}:\n${await load.stderr}`);
  };
  await waitUntil(
    async () => (await alive("before the kill"), load.latest.ok >= 300),
    20_000,
    "300 calls before the kill",
  );
  for (let round = 1; round <= rounds; round++) {
    const before = load.latest.ok;
    await pg.kill();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await alive(`with Postgres killed (round ${round})`);
    await pg.start();
    await waitUntil(
      async () => (await alive(`after the restart (round ${round})`), load.latest.ok >= before + 300),
      20_000,
      `300 more calls after restart ${round}`,
    );
  }
}

Deno.test("the postgres driver alone dies with its null-socket TypeError when Postgres is killed under a load of transactions", async () => {
  // The upstream bug the adapter guards against (see PostgresTransaction in postgres.ts). Should this test start
  // failing, the driver no longer crashes and the guard may go.
  await using pg = await startPostgres();
  await using load = startLoad(pg.url, "--raw");
  const error = await killUnderLoad(pg, load, 3).then(() => undefined, (error: Error) => error);
  assert.ok(error, "the unguarded load survived three kills");
  assert.match(error.message, /Uncaught TypeError: Cannot read properties of null \(reading 'write'\)/);
  assert.match(error.message, /postgres\/src\/connection\.js/);
});

Deno.test("a process running queries and transactions survives Postgres being killed under it and keeps working after the restart", async () => {
  await using pg = await startPostgres();
  await using load = startLoad(pg.url);
  await killUnderLoad(pg, load, 2);
  const names = Object.keys(load.latest.failed);
  assert.ok(names.length > 0, "no call failed while Postgres was down");
  assert.deepEqual(names, ["DatabaseUnavailableError"], `failures: ${JSON.stringify(load.latest.failed)}`);
});
