/**
 * `deno task bench:load`: an open-loop load of `POST /v1/orders` through the gateway, stepping the arrival rate until
 * p99 accept latency passes the limit, a request fails, or sagas are left unfinished. Latency is counted from each
 * order's scheduled send time (scripts/bench/open_loop.ts), so queueing in the generator or the system shows.
 *
 *   deno task bench:load [--mode distributed|embedded] [--rates 25,50,100,200,400,800,1600] [--step-seconds 10]
 *                        [--drain-seconds 30] [--p99-limit-ms 50] [--json]
 *
 * distributed: the six services as six processes on the Postgres, Kafka and NATS named by DATABASE_URL,
 * KAFKA_BROKERS and NATS_URL (tests/support/cluster.ts, fresh databases and topics). embedded: `services/dev.ts` as
 * one child process with DATABASE_URL set, so both modes write to the same durable Postgres (fsync and
 * synchronous_commit as the server has them; the bench prints them) and completion is read the same way.
 *
 * Completion is read from the orders database, not polled through the gateway: after a step's sending phase the bench
 * waits (up to --drain-seconds) until none of the step's orders is PENDING, then reads each order's `created_at` (the
 * accepting transaction) and `updated_at` (its last state change: the saga's terminal one). Per step it prints
 * accepted/s, p50/p99 accept latency, sagas completed/s (terminal orders over first accept → last completion),
 * accept → CONFIRMED p50/p95/p99, CPU per order of each process (/proc/<pid>/stat over the step and its drain; the
 * Postgres backends serving the system summed as one), RSS per process, and the peak outbox backlog per database.
 * The gateway's per-user rate limit is raised for the run (GATEWAY_RATE_LIMIT_*): the bench is one user.
 */
import postgres from "postgres";
import { startCluster } from "../tests/support/cluster.ts";
import { clusterEnv } from "../tests/support/ports.ts";
import { ApiClient } from "../tests/e2e/scenarios.ts";
import { waitUntil } from "@trellis/platform/testing";
import { quantile, runOpenLoop, type Sent, stopReason } from "./bench/open_loop.ts";
import { cpuMs, rssMb } from "./bench/proc.ts";
import { cpuModel, loadavg } from "./wrk.ts";

const SERVICES = ["auth", "inventory", "payments", "orders", "notifications", "gateway"] as const;
const LIMITS = { GATEWAY_RATE_LIMIT_BURST: "1000000", GATEWAY_RATE_LIMIT_PER_SEC: "1000000", LOG_LEVEL: "warn" };

/** A running system under test. */
interface Target {
  endpoints: { gateway: string; auth: string };
  /** The processes whose CPU and memory are reported. */
  pids: { name: string; pid: number }[];
  /** Each service's database URL. */
  databases: Record<string, string>;
  close(): Promise<void>;
}

/** One step of the ladder. */
export interface StepFigures {
  rate: number;
  loadavg: string;
  accepted: number;
  acceptedPerSec: number;
  errors: number;
  p50AcceptMs: number;
  p99AcceptMs: number;
  confirmed: number;
  cancelled: number;
  unfinished: number;
  completedPerSec: number;
  p50ConfirmMs: number;
  p95ConfirmMs: number;
  p99ConfirmMs: number;
  /** CPU ms per accepted order, per process (and `postgres` for the system's backends). */
  cpuPerOrderMs: Record<string, number>;
  rssMb: Record<string, number>;
  /** Highest unpublished outbox count seen per database during the step. */
  peakBacklog: Record<string, number>;
  /** Failed requests by HTTP status and problem type, or by exception name. */
  failures: Record<string, number>;
  stop?: string;
}

function parseArgs(args: string[]) {
  const value = (name: string, fallback: string) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
  };
  const mode = value("--mode", "distributed");
  const rates = value("--rates", "25,50,100,200,400,800,1600").split(",").map(Number);
  const stepSeconds = Number(value("--step-seconds", "10"));
  const drainSeconds = Number(value("--drain-seconds", "30"));
  const p99LimitMs = Number(value("--p99-limit-ms", "50"));
  const problems = [
    !["distributed", "embedded"].includes(mode) && `--mode must be distributed or embedded: current value is ${mode}`,
    !rates.every((r) => r > 0) && `--rates must be positive numbers: current value is ${value("--rates", "")}`,
    !(stepSeconds > 0) && `--step-seconds must be positive: current value is ${stepSeconds}`,
    !(drainSeconds > 0) && `--drain-seconds must be positive: current value is ${drainSeconds}`,
    !(p99LimitMs > 0) && `--p99-limit-ms must be positive: current value is ${p99LimitMs}`,
  ].filter(Boolean);
  if (problems.length > 0) {
    for (const p of problems) console.error(`bench:load: ${p}`);
    Deno.exit(2);
  }
  return { mode, rates, stepSeconds, drainSeconds, p99LimitMs, json: args.includes("--json") };
}

async function distributed(): Promise<Target> {
  const cluster = await startCluster({ env: LIMITS });
  return {
    endpoints: cluster.endpoints,
    pids: cluster.procs.map((p) => ({ name: p.name, pid: p.child.pid })),
    databases: cluster.databases,
    close: () => cluster[Symbol.asyncDispose](),
  };
}

async function embedded(): Promise<Target> {
  const storageDir = await Deno.makeTempDir({ prefix: "trellis-bench-" });
  const { env, ports, databaseUrl } = clusterEnv(storageDir, LIMITS);
  const root = new URL("../", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}services/dev.ts`],
    cwd: root,
    // Tracing off, as the distributed processes run here; and with OTEL_DENO unset dev.ts would re-run itself in a
    // child process, whose CPU and memory the bench would not see.
    env: { ...env, OTEL_DENO: "false" },
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const endpoints = { gateway: `http://127.0.0.1:${ports.gateway}`, auth: `http://127.0.0.1:${ports.auth}` };
  await waitUntil(
    async () => {
      const res = await fetch(`${endpoints.gateway}/readyz`).catch(() => undefined);
      await res?.body?.cancel();
      return res?.ok ?? false;
    },
    90_000,
    "the embedded system to be ready",
    100,
  );
  // services/shared/embedded.ts names a service's database trellis_dev_<service> on DATABASE_URL's server.
  const databases = Object.fromEntries(SERVICES.map((s) => {
    const url = new URL(databaseUrl);
    url.pathname = `/trellis_dev_${s}`;
    return [s, url.href];
  }));
  return {
    endpoints,
    pids: [{ name: "embedded", pid: child.pid }],
    databases,
    async close() {
      child.kill("SIGTERM");
      await child.status;
      await Deno.remove(storageDir, { recursive: true });
    },
  };
}

/** CPU ms of the Postgres backends connected to `databases`, by backend pid. */
async function backendCpu(sql: postgres.Sql, databases: string[]): Promise<Map<number, number>> {
  const rows = await sql<{ pid: number }[]>`select pid from pg_stat_activity where datname = any(${databases})`;
  const out = new Map<number, number>();
  for (const { pid } of rows) out.set(pid, await cpuMs(pid));
  return out;
}

async function main() {
  const opts = parseArgs(Deno.args);
  const target = opts.mode === "distributed" ? await distributed() : await embedded();
  const admin = postgres(target.databases.orders, { max: 1, onnotice: () => {} });
  const named = Object.entries(target.databases).map(([s, url]) => ({ s, url, name: new URL(url).pathname.slice(1) }));
  // Not every service has a database (the gateway and notifications keep none).
  const existing = new Set(
    (await admin<{ datname: string }[]>`select datname from pg_database where datname = any(${
      named.map((d) => d.name)
    })`)
      .map((r) => r.datname),
  );
  const present = named.filter((d) => existing.has(d.name));
  const pools = Object.fromEntries(present.map((d) => [d.s, postgres(d.url, { max: 1, onnotice: () => {} })]));
  const dbNames = present.map((d) => d.name);
  try {
    const [{ fsync }] = await admin<{ fsync: string }[]>`show fsync`;
    const [{ synchronous_commit: sync }] = await admin<{ synchronous_commit: string }[]>`show synchronous_commit`;
    console.log(
      `bench:load mode=${opts.mode} cpu=${await cpuModel()} cores=${navigator.hardwareConcurrency} ` +
        `postgres fsync=${fsync} synchronous_commit=${sync}`,
    );
    // The databases whose outbox backlog is sampled (auth and the gateway have none).
    const outboxes: Outboxes = (await Promise.all(
      Object.entries(pools).map(async ([s, sql]) => {
        const [{ has }] = await sql<{ has: boolean }[]>`select to_regclass('outbox') is not null as has`;
        return has ? [[s, sql] as const] : [];
      }),
    )).flat();
    // One user places every order: stock enough for the whole ladder, so no saga is cancelled for want of tea.
    await pools.inventory`update products set stock = 100000000 where sku = 'tea-sencha'`;
    let api = await ApiClient.login(target.endpoints);
    const warm: string[] = [];
    for (let i = 0; i < 20; i++) warm.push((await api.placeOrder([{ sku: "tea-sencha", quantity: 1 }])).id);
    const warmStart = performance.now();
    await waitUntil(
      async () => {
        const [{ n }] = await pools.orders<{ n: number }[]>`
        select count(*)::int as n from orders where id = any(${warm}) and status = 'PENDING'`;
        return n === 0;
      },
      120_000,
      "the warm-up sagas",
      250,
    ).then(
      () =>
        console.log(`warm-up: 20 sequential orders, sagas done ${(performance.now() - warmStart).toFixed(0)} ms after`),
      () => console.log("warm-up: 20 sequential orders, sagas still PENDING after 120 s; measuring anyway"),
    );
    // What each process burns with no load (pollers, heartbeats, fetch loops): the floor under CPU per order.
    const idle0 = await Promise.all(target.pids.map((p) => cpuMs(p.pid)));
    await new Promise((r) => setTimeout(r, 5_000));
    const idle1 = await Promise.all(target.pids.map((p) => cpuMs(p.pid)));
    console.log(
      `idle CPU (ms per s, over 5 s; load ${await loadavg()}): ` +
        target.pids.map((p, i) => `${p.name}=${((idle1[i] - idle0[i]) / 5).toFixed(1)}`).join(" "),
    );
    const steps: StepFigures[] = [];
    for (const rate of opts.rates) {
      api = await ApiClient.login(target.endpoints); // a fresh token per step: user tokens live 15 minutes
      const step = await runStep(rate, api, target, pools, outboxes, admin, dbNames, opts);
      steps.push(step);
      console.log(formatStep(step));
      if (step.stop) break;
    }
    if (opts.json) console.log(JSON.stringify({ mode: opts.mode, steps }));
  } finally {
    await Promise.all([...Object.values(pools), admin].map((p) => p.end()));
    await target.close();
  }
}

/** Each service whose database has an outbox, with its pool. */
type Outboxes = (readonly [string, postgres.Sql])[];

async function runStep(
  rate: number,
  api: ApiClient,
  target: Target,
  pools: Record<string, postgres.Sql>,
  outboxes: Outboxes,
  admin: postgres.Sql,
  dbNames: string[],
  opts: ReturnType<typeof parseArgs>,
): Promise<StepFigures> {
  const body = JSON.stringify({ items: [{ sku: "tea-sencha", quantity: 1 }] });
  const headers = { authorization: `Bearer ${api.token}`, "content-type": "application/json" };
  const ids: string[] = [];
  const cpu0 = await Promise.all(target.pids.map((p) => cpuMs(p.pid)));
  const pg0 = await backendCpu(admin, dbNames);
  const peakBacklog: Record<string, number> = {};
  const sampleBacklog = async () => {
    await Promise.all(outboxes.map(async ([s, sql]) => {
      const [{ n }] = await sql<{ n: number }[]>`select count(*)::int as n from outbox where published_at is null`;
      peakBacklog[s] = Math.max(peakBacklog[s] ?? 0, n);
    }));
  };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sampleBacklog();
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  const failures = new Map<string, number>();
  const failed = (why: string) => {
    failures.set(why, (failures.get(why) ?? 0) + 1);
    return false;
  };
  const send = async () => {
    try {
      const res = await fetch(`${target.endpoints.gateway}/v1/orders`, {
        method: "POST",
        headers,
        body,
        signal: AbortSignal.timeout(10_000),
      });
      const answer = await res.json();
      if (res.status !== 202) return failed(`${res.status} ${answer.type ?? ""}`.trim());
      ids.push(answer.id);
      return true;
    } catch (err) {
      return failed((err as Error).name);
    }
  };
  const sent: Sent[] = await runOpenLoop({ ratePerSec: rate, durationMs: opts.stepSeconds * 1000, send });
  const pendingLeft = async () => {
    const [{ n }] = await pools.orders<{ n: number }[]>`
      select count(*)::int as n from orders where id = any(${ids}) and status = 'PENDING'`;
    return n;
  };
  await waitUntil(async () => (await pendingLeft()) === 0, opts.drainSeconds * 1000, "the step's sagas", 250)
    .catch(() => {});
  sampling = false;
  await sampler;
  const cpu1 = await Promise.all(target.pids.map((p) => cpuMs(p.pid)));
  const pg1 = await backendCpu(admin, dbNames);
  const rows = await pools.orders<{ status: string; c: number; u: number }[]>`
    select status, extract(epoch from created_at) * 1000 as c, extract(epoch from updated_at) * 1000 as u
    from orders where id = any(${ids})`;
  const accepted = sent.filter((s) => s.ok);
  const acceptMs = accepted.map((s) => s.latencyMs).sort((a, b) => a - b);
  const confirmed = rows.filter((r) => r.status === "CONFIRMED");
  const confirmMs = confirmed.map((r) => Number(r.u) - Number(r.c)).sort((a, b) => a - b);
  const terminal = rows.filter((r) => r.status !== "PENDING");
  const firstAccept = Math.min(...rows.map((r) => Number(r.c)));
  const lastDone = Math.max(...terminal.map((r) => Number(r.u)));
  const lastAnswer = Math.max(...sent.map((s) => s.scheduledAt + s.latencyMs)) -
    Math.min(...sent.map((s) => s.scheduledAt));
  const cpuPerOrderMs: Record<string, number> = {};
  target.pids.forEach((p, i) => cpuPerOrderMs[p.name] = (cpu1[i] - cpu0[i]) / Math.max(1, accepted.length));
  let pgMs = 0;
  for (const [pid, ms] of pg1) if (!Number.isNaN(ms)) pgMs += ms - (pg0.get(pid) ?? 0);
  cpuPerOrderMs.postgres = pgMs / Math.max(1, accepted.length);
  const rss: Record<string, number> = {};
  for (const p of target.pids) rss[p.name] = await rssMb(p.pid);
  const figures: StepFigures = {
    rate,
    loadavg: await loadavg(),
    accepted: accepted.length,
    acceptedPerSec: accepted.length / (lastAnswer / 1000),
    errors: sent.length - accepted.length,
    p50AcceptMs: quantile(acceptMs, 0.5),
    p99AcceptMs: quantile(acceptMs, 0.99),
    confirmed: confirmed.length,
    cancelled: rows.filter((r) => r.status === "CANCELLED").length,
    unfinished: rows.length - terminal.length,
    completedPerSec: terminal.length / ((lastDone - firstAccept) / 1000),
    p50ConfirmMs: quantile(confirmMs, 0.5),
    p95ConfirmMs: quantile(confirmMs, 0.95),
    p99ConfirmMs: quantile(confirmMs, 0.99),
    cpuPerOrderMs,
    rssMb: rss,
    peakBacklog,
    failures: Object.fromEntries(failures),
  };
  figures.stop = stopReason(
    { p99AcceptMs: figures.p99AcceptMs, errors: figures.errors, unfinished: figures.unfinished },
    opts.p99LimitMs,
  );
  return figures;
}

function formatStep(s: StepFigures): string {
  const f = (n: number) => Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : "-";
  const per = (r: Record<string, number>, unit: string) =>
    Object.entries(r).map(([k, v]) => `${k}=${f(v)}${unit}`).join(" ");
  return [
    `rate ${s.rate}/s (load ${s.loadavg}): accepted ${s.accepted} (${f(s.acceptedPerSec)}/s), errors ${s.errors}, ` +
    `accept p50 ${f(s.p50AcceptMs)} ms p99 ${f(s.p99AcceptMs)} ms`,
    `  sagas: confirmed ${s.confirmed} cancelled ${s.cancelled} unfinished ${s.unfinished}, ` +
    `completed ${f(s.completedPerSec)}/s, accept→CONFIRMED p50 ${f(s.p50ConfirmMs)} p95 ${f(s.p95ConfirmMs)} ` +
    `p99 ${f(s.p99ConfirmMs)} ms`,
    `  CPU per order: ${per(s.cpuPerOrderMs, " ms")}`,
    `  RSS: ${per(s.rssMb, " MB")}`,
    `  peak outbox backlog: ${per(s.peakBacklog, "")}`,
    ...(s.errors > 0 ? [`  failures: ${JSON.stringify(s.failures)}`] : []),
    ...(s.stop ? [`  stop: ${s.stop}`] : []),
  ].join("\n");
}

if (import.meta.main) await main();
