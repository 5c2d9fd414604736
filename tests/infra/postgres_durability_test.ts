// Proves the PostgreSQL that scripts/infra.sh starts is durable unless TRELLIS_PG_UNSAFE=1 asks otherwise, including a
// data directory initialised by the old infra.sh that wrote fsync/synchronous_commit/full_page_writes off into its
// postgresql.conf, and that a SIGKILLed durable server keeps every commit it acknowledged.
import assert from "node:assert/strict";
import postgres from "postgres";
import { freePorts } from "../support/ports.ts";
import { within } from "@trellis/platform/testing";

const SCRIPT = new URL("../../scripts/infra.sh", import.meta.url).pathname;
const HOST = "127.0.0.1";
const SETTINGS = ["fsync", "synchronous_commit", "full_page_writes"] as const;

/** What the pre-durability infra.sh appended to postgresql.conf at initdb time. */
const OLD_UNSAFE_CONF = "\n# --- written by an old scripts/infra.sh\nfsync = off\nsynchronous_commit = off\n" +
  "full_page_writes = off\n";

interface InfraRun {
  code: number;
  out: string;
}

/** A private Postgres managed by infra.sh in a temp dir on a free port; disposing stops it and removes its data. */
async function privatePostgres() {
  const [port] = freePorts(1);
  // under /tmp: the postgres user must be able to reach the data directory, and the socket path must stay short
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "trellis-pgd-" });
  const infra = async (action: "up" | "down" | "status", env: Record<string, string> = {}): Promise<InfraRun> => {
    // Generous: the first `up` may install PostgreSQL with apt-get before starting it.
    const out = await within(
      new Deno.Command("bash", {
        args: [SCRIPT, action, "postgres"],
        env: { TRELLIS_INFRA_DIR: dir, TRELLIS_PG_PORT: String(port), TRELLIS_PG_UNSAFE: "", ...env },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output(),
      600_000,
      `infra.sh ${action} postgres`,
    );
    const text = new TextDecoder();
    return { code: out.code, out: text.decode(out.stdout) + text.decode(out.stderr) };
  };
  const up = async (env: Record<string, string> = {}) => {
    const run = await infra("up", env);
    assert.equal(run.code, 0, run.out);
    return run.out;
  };
  const down = async () => {
    const run = await infra("down");
    assert.equal(run.code, 0, run.out);
  };
  return {
    port,
    dataDir: `${dir}/postgres-${port}/data`,
    infra,
    up,
    down,
    /** `show <setting>` for the three durability settings. */
    async settings(): Promise<Record<string, string>> {
      const sql = postgres({ host: HOST, port, user: "postgres", database: "postgres", max: 1, onnotice: () => {} });
      try {
        const result: Record<string, string> = {};
        for (const name of SETTINGS) {
          const [row] = await sql.unsafe(`show ${name}`);
          result[name] = row[name];
        }
        return result;
      } finally {
        await sql.end();
      }
    },
    /**
     * SIGKILL to the postmaster's process group (postmaster and backends), as a crash would; resolves once the
     * postmaster is reaped, since a zombie still passes the `kill -0` check of Postgres' lock file.
     */
    async crash() {
      const pid = Number((await Deno.readTextFile(`${dir}/postgres-${port}/data/postmaster.pid`)).split("\n")[0]);
      Deno.kill(-pid, "SIGKILL"); // pg_ctl starts the postmaster as a session and process-group leader
      const deadline = Date.now() + 30_000;
      while (await exists(pid)) {
        if (Date.now() > deadline) throw new Error(`postmaster ${pid} not gone 30 s after SIGKILL`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async [Symbol.asyncDispose]() {
      const run = await infra("down");
      if (run.code !== 0) console.error(`infra.sh down failed:\n${run.out}`);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function exists(pid: number): Promise<boolean> {
  try {
    await Deno.stat(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Commits single-row inserts one after another until the server dies under them (crash() after `runMs`), restarts it
 * with `env`; answers how many commits were acknowledged and how many rows the restarted server has.
 */
async function commitsAcrossCrash(
  pg: Awaited<ReturnType<typeof privatePostgres>>,
  runMs: number,
  env: Record<string, string> = {},
) {
  const opts = { host: HOST, port: pg.port, user: "postgres", database: "postgres", max: 1, onnotice: () => {} };
  let sql = postgres(opts);
  await sql`create table if not exists acked (n int primary key)`;
  await sql`truncate acked`;
  let acked = 0;
  const writer = (async () => {
    try {
      for (let n = 1;; n++) {
        await sql`insert into acked values (${n})`;
        acked = n;
      }
    } catch { /* the server died under us */ }
  })();
  await new Promise((r) => setTimeout(r, runMs));
  await pg.crash();
  await within(writer, 10_000, "the writer to stop once Postgres crashed under it");
  await sql.end({ timeout: 1 });
  await pg.up(env);
  sql = postgres(opts);
  try {
    const [{ count }] = await sql`select count(*)::int as count from acked`;
    return { acked, rows: count as number };
  } finally {
    await sql.end();
  }
}

Deno.test("infra.sh starts postgres with fsync, synchronous_commit and full_page_writes on by default", async () => {
  await using pg = await privatePostgres();
  const started = await pg.up();
  assert.match(started, /started \(pid \d+, durable\)/);
  assert.deepEqual(await pg.settings(), { fsync: "on", synchronous_commit: "on", full_page_writes: "on" });
  const status = await pg.infra("status");
  assert.equal(status.code, 0, status.out);
  assert.match(status.out, /postgres +running .* pid \d+ +durable/);
});

Deno.test("infra.sh starts postgres with the three settings off only when TRELLIS_PG_UNSAFE=1 asks for it", async () => {
  await using pg = await privatePostgres();
  const started = await pg.up({ TRELLIS_PG_UNSAFE: "1" });
  assert.match(started, /started \(pid \d+, UNSAFE \(fsync=off, synchronous_commit=off, full_page_writes=off\)\)/);
  assert.deepEqual(await pg.settings(), { fsync: "off", synchronous_commit: "off", full_page_writes: "off" });
  assert.match((await pg.infra("status")).out, /pid \d+ +UNSAFE \(fsync=off/);

  // the same data directory started again without the variable is durable: the mode is chosen at every start
  await pg.down();
  assert.match(await pg.up(), /durable/);
  assert.deepEqual(await pg.settings(), { fsync: "on", synchronous_commit: "on", full_page_writes: "on" });
});

Deno.test("infra.sh up warns when it reuses a running unsafe postgres while durability was asked for", async () => {
  await using pg = await privatePostgres();
  await pg.up({ TRELLIS_PG_UNSAFE: "1" });
  const again = await pg.up();
  assert.match(again, /already running \(pid \d+, UNSAFE/);
  assert.match(again, /warning: .* runs UNSAFE .* restart it/);
});

Deno.test("infra.sh rejects a TRELLIS_PG_UNSAFE value other than 1 or empty", async () => {
  await using pg = await privatePostgres();
  const run = await pg.infra("up", { TRELLIS_PG_UNSAFE: "yes" });
  assert.equal(run.code, 2, run.out);
  assert.match(run.out, /TRELLIS_PG_UNSAFE must be 1 or unset/);
});

Deno.test("a data directory initialised with the old unsafe postgresql.conf comes up durable on restart", async () => {
  await using pg = await privatePostgres();
  await pg.up();
  await pg.down();
  await Deno.writeTextFile(`${pg.dataDir}/postgresql.conf`, OLD_UNSAFE_CONF, { append: true });
  const conf = await Deno.readTextFile(`${pg.dataDir}/postgresql.conf`);
  assert.match(conf, /^fsync = off$/m, "the old settings are in the file the server reads");

  assert.match(await pg.up(), /durable/);
  assert.deepEqual(await pg.settings(), { fsync: "on", synchronous_commit: "on", full_page_writes: "on" });
});

Deno.test("a SIGKILLed durable postgres keeps every commit it acknowledged", async () => {
  await using pg = await privatePostgres();
  await pg.up();
  const { acked, rows } = await commitsAcrossCrash(pg, 1_500);
  console.log(`durable: ${acked} commits acknowledged before SIGKILL, ${rows} rows after restart`);
  assert.ok(acked > 0, "no commit was acknowledged before the crash");
  // one more row than acknowledged is allowed: a commit can land just before the ack is lost with the connection
  assert.ok(rows >= acked && rows <= acked + 1, `acknowledged ${acked} commits, ${rows} rows survived`);
});

Deno.test("the same crash loses acknowledged commits of a postgres started with TRELLIS_PG_UNSAFE=1", async () => {
  // The counter-proof for the test above: the crash it survives is one that does lose data without durability.
  // A loss needs the crash to land while commits sit in WAL buffers, so allow a few tries.
  await using pg = await privatePostgres();
  const unsafe = { TRELLIS_PG_UNSAFE: "1" };
  await pg.up(unsafe);
  const runs: { acked: number; rows: number }[] = [];
  for (let attempt = 0; attempt < 3 && !runs.some((r) => r.rows < r.acked); attempt++) {
    runs.push(await commitsAcrossCrash(pg, 1_500, unsafe));
  }
  console.log(`unsafe: ${runs.map((r) => `${r.acked} acknowledged, ${r.rows} rows`).join("; ")}`);
  assert.ok(runs.some((r) => r.rows < r.acked), `no acknowledged commit was lost in ${runs.length} crashes`);
});
