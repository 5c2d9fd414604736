// Proves `deno task up` supervises its services: a SIGKILLed service process is restarted and serves again, the restart
// is logged, and `deno task down` stops every process and the supervisor. Runs a private copy of the system (own
// ports, run and log directories, database and topic prefixes) against the shared Postgres, NATS and Kafka.
import assert from "node:assert/strict";
import postgres from "postgres";
import { restartDelay, Supervisor, type SupervisorOptions } from "../../scripts/supervise.ts";
import { clusterEnv } from "../support/ports.ts";
import { waitUntil, within } from "@trellis/platform/testing";

const ROOT = new URL("../../", import.meta.url).pathname;
const SERVICES = ["auth", "inventory", "payments", "orders", "notifications", "gateway"] as const;

interface ScriptRun {
  code: number;
  out: string;
  seconds: number;
}

/** Whether a process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch {
    return false;
  }
}

/** The first value `probe` answers other than undefined, polling every 100 ms for at most `timeoutMs`. */
async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  let value: T | undefined;
  await waitUntil(async () => (value = await probe()) !== undefined, timeoutMs, what, 100);
  return value!;
}

async function readyz(url: string): Promise<number | undefined> {
  try {
    const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return undefined;
  }
}

/** A private `deno task up` environment; disposing runs down.sh, drops its databases and removes its directories. */
async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "trellis-supervise-" });
  const runDir = `${dir}/run`;
  const logDir = `${dir}/logs`;
  const { id, ports, databaseUrl, env } = clusterEnv(`${dir}/storage`, {
    TRELLIS_RUN_DIR: runDir,
    TRELLIS_LOG_DIR: logDir,
  });
  const script = async (name: "up" | "down", timeoutMs: number): Promise<ScriptRun> => {
    const t0 = performance.now();
    const out = await new Deno.Command("bash", {
      args: [`${ROOT}scripts/${name}.sh`],
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    const text = new TextDecoder();
    return {
      code: out.code,
      out: text.decode(out.stdout) + text.decode(out.stderr),
      seconds: (performance.now() - t0) / 1000,
    };
  };
  const pidOf = async (name: string): Promise<number | undefined> => {
    try {
      const pid = Number((await Deno.readTextFile(`${runDir}/${name}.pid`)).trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  const readLog = (name: string) => Deno.readTextFile(`${logDir}/${name}.log`).catch(() => "(no log)");
  return {
    urls: Object.fromEntries(Object.entries(ports).map(([k, p]) => [k, `http://127.0.0.1:${p}`])),
    script,
    pidOf,
    readLog,
    runDir,
    logDir,
    env,
    async [Symbol.asyncDispose]() {
      const down = await script("down", 90_000);
      if (down.code !== 0) console.error(`down.sh failed:\n${down.out}`);
      const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
      try {
        for (const s of SERVICES) await sql.unsafe(`drop database if exists "${id}_${s}" with (force)`);
      } finally {
        await sql.end();
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("restartDelay() starts at 1 s, doubles up to 30 s and resets after a run of 60 s", () => {
  const delays: number[] = [];
  let previous: number | undefined;
  for (let i = 0; i < 8; i++) delays.push(previous = restartDelay(previous, 500));
  assert.deepEqual(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  assert.equal(restartDelay(30_000, 59_999), 30_000);
  assert.equal(restartDelay(30_000, 60_000), 1_000);
  assert.throws(() => restartDelay(1_000, -1), RangeError);
});

/**
 * A Supervisor over stand-in services (`services/<name>/main.ts` in a temp root, given as source text), with its
 * run and log directories in that root; disposing stops it and removes the root.
 */
async function fakeSupervisor(
  services: Record<string, string>,
  options: Omit<SupervisorOptions, "root" | "runDir" | "logDir" | "urls">,
) {
  const root = await Deno.makeTempDir({ prefix: "trellis-supervisor-" });
  for (const [name, source] of Object.entries(services)) {
    await Deno.mkdir(`${root}/services/${name}`, { recursive: true });
    await Deno.writeTextFile(`${root}/services/${name}/main.ts`, source);
  }
  const supervisor = new Supervisor({ root, runDir: `${root}/run`, logDir: `${root}/logs`, urls: {}, ...options });
  const log = (name = "supervisor") => Deno.readTextFile(`${root}/logs/${name}.log`).catch(() => "");
  return {
    root,
    supervisor,
    log,
    pidOf: async (name: string) =>
      Number(await Deno.readTextFile(`${root}/run/${name}.pid`).catch(() => "")) || undefined,
    /** Waits until supervisor.log matches `pattern`. */
    logShows: (pattern: RegExp, timeoutMs = 15_000) =>
      waitFor(`supervisor.log to show ${pattern}`, timeoutMs, async () => pattern.test(await log()) || undefined),
    async [Symbol.asyncDispose]() {
      await supervisor.stop();
      await Deno.remove(root, { recursive: true });
    },
  };
}

Deno.test("Supervisor restarts a service that keeps exiting, with doubling delays, one log line per restart", async () => {
  await using fake = await fakeSupervisor({ crasher: "Deno.exit(3);\n" }, {
    startWaves: [["crasher"]],
    stopWaves: [["crasher"]],
    backoff: { initialMs: 200, maxMs: 800 },
  });
  await fake.supervisor.start();
  await fake.logShows(/restart 5 in/);
  await fake.supervisor.stop();
  const lines = (await fake.log()).split("\n").filter((l) => l.includes(": crasher (pid"));
  const restarts = lines.map((l) => l.match(/exited \(exit code 3\) after [\d.]+ s; restart (\d+) in (\d+) ms$/));
  assert.ok(restarts.every((m) => m !== null), lines.join("\n"));
  assert.deepEqual(restarts.slice(0, 5).map((m) => [Number(m![1]), Number(m![2])]), [
    [1, 200],
    [2, 400],
    [3, 800],
    [4, 800],
    [5, 800],
  ]);
  const own = await fake.log("crasher");
  for (const line of lines) assert.ok(own.includes(line), `crasher.log lacks: ${line}`);
  assert.equal(await fake.pidOf("crasher"), undefined, "crasher.pid left after stop");
  assert.equal(await fake.pidOf("supervisor"), undefined, "supervisor.pid left after stop");
});

Deno.test("Supervisor.stop() cancels a pending restart instead of starting the service again", async () => {
  await using fake = await fakeSupervisor({ crasher: "Deno.exit(3);\n" }, {
    startWaves: [["crasher"]],
    backoff: { initialMs: 5_000 },
  });
  await fake.supervisor.start();
  await fake.logShows(/restart 1 in 5 s/);
  const t0 = performance.now();
  await fake.supervisor.stop();
  assert.ok(performance.now() - t0 < 2_000, `stop took ${performance.now() - t0} ms`);
  await new Promise((r) => setTimeout(r, 100));
  assert.doesNotMatch(await fake.log(), /restarted/);
});

Deno.test("Supervisor.stop() goes wave by wave and SIGKILLs a service that ignores SIGTERM after the grace period", async () => {
  const stubborn = 'Deno.addSignalListener("SIGTERM", () => {});\n' +
    'await Deno.writeTextFile(new URL("./armed", import.meta.url), "");\nsetInterval(() => {}, 1_000);\n';
  await using fake = await fakeSupervisor({ stubborn, polite: "setInterval(() => {}, 1_000);\n" }, {
    startWaves: [["polite", "stubborn"]],
    stopWaves: [["stubborn"], ["polite"]],
    stopGraceMs: 500,
  });
  await fake.supervisor.start();
  await waitFor(
    "stubborn to ignore SIGTERM",
    15_000,
    () => Deno.stat(`${fake.root}/services/stubborn/armed`).then(() => true, () => undefined),
  );
  const pids = [await fake.pidOf("stubborn"), await fake.pidOf("polite")];
  const t0 = performance.now();
  await fake.supervisor.stop();
  const ms = performance.now() - t0;
  assert.ok(ms >= 500, `stopped after ${ms} ms, before the grace period`);
  const log = await fake.log();
  const killed = log.indexOf("stopped stubborn (signal SIGKILL)");
  const termed = log.indexOf("stopped polite (signal SIGTERM)");
  assert.ok(killed >= 0 && termed > killed, log);
  for (const pid of pids) assert.equal(alive(pid!), false, `pid ${pid} still alive`);
});

Deno.test("deno task up restarts a SIGKILLed service and deno task down stops every process", async (t) => {
  await using env = await setup();
  const pids: Record<string, number> = {};

  let up: ScriptRun;
  await t.step("up.sh starts six supervised services that answer /readyz", async () => {
    up = await env.script("up", 240_000);
    console.log(`up.sh took ${up.seconds.toFixed(1)} s`);
    assert.equal(up.code, 0, up.out);
    assert.match(up.out, /supervisor… started \(pid \d+\)/);
    assert.match(up.out, /Processes are supervised/);
    for (const name of ["supervisor", ...SERVICES]) {
      const pid = await env.pidOf(name);
      assert.ok(pid !== undefined && alive(pid), `${name} has no live pid file (pid ${pid})`);
      pids[name] = pid;
    }
    for (const name of SERVICES) assert.equal(await readyz(env.urls[name]), 200, `${name} /readyz`);
  });

  await t.step(
    "the services are traced by default, to the receiver the supervisor serves, each under its name",
    async () => {
      const traces = `http://127.0.0.1:${env.env.TRACES_PORT}/api/traces`;
      assert.match(up.out, new RegExp(`Traces: ${traces.replaceAll(".", "\\.")}`));
      const exported = async (service: string) => {
        const res = await fetch(`${traces}?service=${service}&limit=1`);
        return res.ok && (await res.json()).traces.length === 1;
      };
      // Every /readyz the scripts sent is a server span of its service (OTEL_SERVICE_NAME names the process).
      for (const name of SERVICES) await waitUntil(() => exported(name), 30_000, `a trace of ${name}`, 200);
    },
  );

  await t.step("a second up.sh finds the supervisor running and starts nothing", async () => {
    const again = await env.script("up", 60_000);
    assert.equal(again.code, 0, again.out);
    assert.match(again.out, new RegExp(`supervisor… already running \\(pid ${pids.supervisor}\\)`));
    for (const name of SERVICES) assert.equal(await env.pidOf(name), pids[name], `${name} pid changed`);
  });

  await t.step("a SIGKILLed orders process is replaced by a new one that is ready again", async () => {
    const t0 = performance.now();
    Deno.kill(pids.orders, "SIGKILL");
    const next = await waitFor("a new orders pid", 30_000, async () => {
      const pid = await env.pidOf("orders");
      return pid !== undefined && pid !== pids.orders && alive(pid) ? pid : undefined;
    });
    await waitFor("orders /readyz 200 after the restart", 60_000, async () => {
      return await readyz(env.urls.orders) === 200 ? true : undefined;
    }).catch(async (err) => {
      throw new Error(`${err.message}; orders log:\n${(await env.readLog("orders")).slice(-3000)}`);
    });
    console.log(`orders back and ready ${((performance.now() - t0) / 1000).toFixed(1)} s after SIGKILL`);
    assert.equal(alive(pids.orders), false, "the killed process is gone");
    assert.equal(alive(pids.supervisor), true, "the supervisor survives");
    pids.orders2 = next;
  });

  await t.step("the restart is one line in supervisor.log and in orders.log naming SIGKILL", async () => {
    const line = new RegExp(
      `supervisor: orders \\(pid ${pids.orders}\\) exited \\(signal SIGKILL\\) after [\\d.]+ s; restart 1 in 1 s`,
    );
    assert.match(await env.readLog("supervisor"), line);
    assert.match(await env.readLog("orders"), line);
    assert.match(
      await env.readLog("supervisor"),
      new RegExp(`restarted \\(restart 1\\) orders \\(pid ${pids.orders2}\\)`),
    );
  });

  await t.step("the other services kept their processes", async () => {
    for (const name of SERVICES.filter((s) => s !== "orders")) {
      assert.equal(await env.pidOf(name), pids[name], `${name} pid changed`);
      assert.equal(alive(pids[name]), true, `${name} died`);
    }
  });

  await t.step("down.sh stops the supervisor and every service, edge inwards", async () => {
    const down = await env.script("down", 90_000);
    console.log(`down.sh took ${down.seconds.toFixed(1)} s`);
    assert.equal(down.code, 0, down.out);
    assert.match(down.out, /supervisor… stopped/);
    for (const [name, pid] of Object.entries(pids)) {
      await waitFor(`${name} (pid ${pid}) to be gone`, 10_000, () => Promise.resolve(alive(pid) ? undefined : true));
    }
    for (const name of SERVICES) assert.equal(await readyz(env.urls[name]), undefined, `${name} still answers`);
    const log = await env.readLog("supervisor");
    const order = ["gateway", "orders", "inventory", "auth"].map((s) => log.indexOf(`supervisor: stopped ${s} (`));
    assert.ok(order.every((i) => i >= 0), `a stopped line is missing:\n${log}`);
    assert.deepEqual([...order].sort((a, b) => a - b), order, `not stopped edge inwards:\n${log}`);
    assert.match(log, /every service stopped; exiting/);
    for (const name of ["supervisor", ...SERVICES]) assert.equal(await env.pidOf(name), undefined, `${name}.pid left`);
  });
});

Deno.test("down.sh stops a service left by an unsupervised up, which up.sh refuses to start beside", async () => {
  await using env = await setup();
  await Deno.mkdir(env.runDir, { recursive: true });
  await Deno.mkdir(env.logDir, { recursive: true });
  // what the old up.sh did: a background process per service and its pid file
  const started = await within(
    new Deno.Command("bash", {
      args: [
        "-c",
        'nohup "$0" run -A services/auth/main.ts >>"$1/auth.log" 2>&1 </dev/null & echo $! >"$2/auth.pid"',
        Deno.execPath(),
        env.logDir,
        env.runDir,
      ],
      cwd: ROOT,
      env: env.env,
    }).output(),
    10_000,
    "bash to start auth in the background",
  );
  assert.equal(started.code, 0);
  const pid = await env.pidOf("auth");
  assert.ok(pid !== undefined);
  await waitFor("the unsupervised auth to be ready", 60_000, async () => {
    return await readyz(env.urls.auth) === 200 ? true : undefined;
  });

  const up = await env.script("up", 60_000);
  assert.equal(up.code, 1, up.out);
  assert.match(up.out, /auth \(pid \d+\) still runs from an unsupervised start; run 'deno task down' first/);
  assert.equal(await env.pidOf("supervisor"), undefined, "no supervisor was started");

  const down = await env.script("down", 60_000);
  assert.equal(down.code, 0, down.out);
  assert.match(down.out, new RegExp(`auth… stopped \\(pid ${pid}\\)`));
  await waitFor(`auth (pid ${pid}) to be gone`, 10_000, () => Promise.resolve(alive(pid) ? undefined : true));
  assert.equal(await env.pidOf("auth"), undefined, "auth.pid left");
});
