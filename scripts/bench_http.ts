/**
 * `deno task bench:http`: what the full production HTTP stack costs against the runtime's floor — raw `Deno.serve`
 * sending the same response headers — in server CPU per request and p99 latency, measured in one run.
 *
 * The same tiny handler (`GET /v1/ping` answering `{"pong":true}`) is served by the servers below, each in its own
 * subprocess so they do not share an event loop:
 *
 * - raw: `Deno.serve` calling the handler directly;
 * - stack: a platform `Service` (its default stack: request context, tracing, security headers, recovery, access
 *   log, RED metrics, body limit) with CORS (an allowed origin) and a rate limit keyed by a header (capacity large
 *   enough never to refuse), routed by a `Router`, and the access log written as in production: the default logger
 *   at info to stdout, which is redirected to a file (appended, counted after each run to prove the lines were
 *   written, then truncated).
 *
 * A third server, the floor, is raw `Deno.serve` answering with the response headers the stack sends (copied from
 * one of its answers): what those headers cost the runtime, whatever code produces them. The targets compare the stack
 * with it: server CPU per request at most 1.3 × the floor's (a floor ratio, floor CPU / stack CPU, of at least 0.75),
 * and p99 at most the floor's + 1 ms.
 *
 * wrk (1 thread, 50 connections) sends all the same `Origin` and `X-Api-Key` headers. The variants alternate
 * (raw, floor, stack) for `--rounds` rounds; each ratio is the median of the per-round ratios, so drift in the
 * machine's load between rounds cancels out. Writes the figures into the "HTTP stack" section of docs/performance.md.
 *
 * With `--layered`, a fourth server runs in the same rounds: the same stack built from the composable middleware
 * (`requestContext`, `tracing`, `securityHeaders`, `recovery`, `accessLog`, `redMetrics`, `bodyLimit`, chained as
 * `Service` did before its default stack was fused), for a before/after measured in one run.
 *
 *   deno task bench:http [--seconds 10] [--rounds 3] [--layered] [--no-write]
 *
 * Internally the servers are this script run as `--serve raw|headers|stack|layered --port N`.
 */
import { Registry } from "prom-client";
import { holdDeadlineTimer } from "@trellis/platform/context";
import {
  accessLog,
  bodyLimit,
  chain,
  cors,
  json,
  pathnameOf,
  rateLimit,
  recovery,
  requestContext,
  Router,
  securityHeaders,
  tracing,
} from "@trellis/platform/http";
import { createLogger } from "@trellis/platform/log";
import { redMetrics, Service } from "@trellis/platform/service";
import { freePorts } from "../tests/support/ports.ts";
import {
  cpuModel,
  loadavg,
  median,
  writePerformanceSection,
  wrk,
  WRK_DONE_LUA,
  type WrkResult,
  wrkVersion as readWrkVersion,
} from "./wrk.ts";

const CONNECTIONS = 50;
/** Floor CPU per request / stack CPU per request: the stack may cost at most 1.3 × the floor. */
const TARGET_FLOOR_RATIO = 0.75;
/** p99 of the stack over the floor's. */
const TARGET_P99_MS = 1;
const ORIGIN = "https://shop.example";
const API_KEY = "bench-client";
const PATH = "/v1/ping";

const args = Deno.args;
const option = (name: string, dflt: number) => args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt;

/** The handler both servers run. */
const ping = (): Promise<Response> => Promise.resolve(json({ pong: true }));

if (args.includes("--serve")) {
  await serve(args[args.indexOf("--serve") + 1], option("--port", 0));
} else {
  await main();
}

/** Server mode: runs one variant until SIGTERM. */
async function serve(variant: string, port: number): Promise<void> {
  if (variant === "raw") {
    const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, () => ping());
    Deno.addSignalListener("SIGTERM", () => server.shutdown().then(() => Deno.exit(0)));
    return;
  }
  if (variant === "headers") {
    // Raw Deno.serve answering with the response headers the stack sends (copied from one of its answers), set
    // the cheapest way: what those headers cost the runtime whatever code produces them.
    const pairs: [string, string][] = JSON.parse(Deno.env.get("BENCH_STACK_HEADERS") ?? "[]");
    const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, () => {
      const res = json({ pong: true });
      for (const [k, v] of pairs) res.headers.set(k, v);
      return Promise.resolve(res);
    });
    Deno.addSignalListener("SIGTERM", () => server.shutdown().then(() => Deno.exit(0)));
    return;
  }
  const middleware = [
    cors({ origins: [ORIGIN] }),
    rateLimit({
      key: (req: Request) => req.headers.get("x-api-key") ?? undefined,
      capacity: 1_000_000_000,
      refillPerSec: 1e9,
    }),
  ];
  if (variant === "layered") {
    const logger = createLogger("bench-http");
    const registry = new Registry();
    registry.setDefaultLabels({ service: "bench-http" });
    const app = chain(
      requestContext(),
      tracing(),
      securityHeaders(),
      recovery(logger),
      accessLog(logger),
      redMetrics(registry),
      bodyLimit(),
      ...middleware,
    )(new Router().get(PATH, ping).handler);
    const release = holdDeadlineTimer();
    // As Service: its built-in routes are looked at first.
    const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (req) => {
      if (pathnameOf(req) === "/healthz") return json({ status: "ok" });
      return app(req);
    });
    Deno.addSignalListener("SIGTERM", () => server.shutdown().then(() => (release(), Deno.exit(0))));
    return;
  }
  if (variant !== "stack") {
    throw new TypeError(`Cannot serve variant "${variant}": expected raw, headers, stack or layered`);
  }
  const svc = new Service({ name: "bench-http", port, middleware });
  svc.handle(new Router().get(PATH, ping).handler);
  await svc.start();
  Deno.addSignalListener("SIGTERM", () => svc.stop().then(() => Deno.exit(0)));
}

interface Server {
  url: string;
  logFile: string;
  /** CPU time (user + system) the server process has used so far, in microseconds. */
  cpuUs(): Promise<number>;
  stop(): Promise<void>;
}

/** User + system CPU of process `pid` in microseconds, from /proc (NaN where there is no /proc). */
async function processCpuUs(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => undefined);
  if (!stat) return NaN;
  // Fields after the command name (which may hold spaces) start at "state"; utime and stime are the 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // In clock ticks: Linux's USER_HZ, 100 on every common build.
  return (Number(fields[11]) + Number(fields[12])) * 1e6 / 100;
}

/** Starts a variant in its own `deno run --allow-all` process, stdout appended to `logFile`; waits until it answers. */
type Variant = "raw" | "headers" | "stack" | "layered";

/** Response headers of the stack that the runtime would not add itself, as name/value pairs. */
async function stackHeaders(url: string): Promise<[string, string][]> {
  const res = await fetch(url, { headers: { origin: ORIGIN, "x-api-key": API_KEY } });
  await res.body?.cancel();
  return [...res.headers].filter(([k]) => !["content-type", "content-length", "date"].includes(k));
}

async function startServer(variant: Variant, logFile: string, env: Record<string, string> = {}): Promise<Server> {
  const [port] = freePorts(1);
  const script = new URL(import.meta.url).pathname;
  // `exec` so the shell is replaced and the signal reaches Deno; `>>` (O_APPEND) so the file can be truncated.
  const child = new Deno.Command("sh", {
    args: ["-c", 'exec "$0" "$@" >>"$BENCH_LOG"', Deno.execPath(), "run", "--allow-all", script, "--serve", variant]
      .concat(["--port", String(port)]),
    env: { BENCH_LOG: logFile, LOG_LEVEL: "info", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}${PATH}`;
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    await child.status;
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(url, { headers: { origin: ORIGIN, "x-api-key": API_KEY } });
      const body = await res.text();
      if (res.status !== 200 || body !== '{"pong":true}') throw new Error(`${variant} answered ${res.status} ${body}`);
      if (variant === "stack" || variant === "layered") {
        for (const h of ["access-control-allow-origin", "ratelimit-limit", "x-request-id", "traceparent"]) {
          if (!res.headers.has(h)) throw new Error(`stack answered without ${h}: is the stack in place?`);
        }
      }
      return { url, logFile, cpuUs: () => processCpuUs(child.pid), stop };
    } catch (err) {
      if (err instanceof Error && err.message.includes("answered")) {
        await stop();
        throw err;
      }
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`${variant} server did not answer on ${url} within 30 s: ${err}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Lines in `file`, then empties it. */
async function countAndTruncate(file: string): Promise<number> {
  let lines = 0;
  using f = await Deno.open(file, { read: true });
  for await (const chunk of f.readable) {
    for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) lines++;
  }
  await Deno.truncate(file, 0);
  return lines;
}

async function main(): Promise<void> {
  const seconds = option("--seconds", 10);
  const rounds = option("--rounds", 3);
  if (!(Number.isInteger(seconds) && seconds >= 1 && Number.isInteger(rounds) && rounds >= 1)) {
    console.error("usage: deno task bench:http [--seconds N] [--rounds N] [--no-write]");
    Deno.exit(2);
  }
  const wrkVersion = await readWrkVersion();
  if (wrkVersion === undefined) {
    console.error("wrk is not installed: run `sudo apt-get install -y wrk` (Debian/Ubuntu), then try again");
    Deno.exit(1);
  }

  const loadBefore = await loadavg();
  const dir = await Deno.makeTempDir({ prefix: "trellis-bench-http-" });
  const script = `${dir}/headers.lua`;
  await Deno.writeTextFile(
    script,
    `wrk.headers["Origin"] = "${ORIGIN}"\nwrk.headers["X-Api-Key"] = "${API_KEY}"\n${WRK_DONE_LUA}`,
  );
  const layered = args.includes("--layered");
  const variants: Variant[] = layered ? ["raw", "headers", "layered", "stack"] : ["raw", "headers", "stack"];
  const results: Record<Variant, WrkResult[]> = { raw: [], headers: [], stack: [], layered: [] };
  /** Server CPU (user + system) per completed request, in µs, per round. */
  const cpuPerRequest: Record<Variant, number[]> = { raw: [], headers: [], stack: [], layered: [] };
  const logLines: number[] = [];
  const servers: Partial<Record<Variant, Server>> = {};
  let loadAfter = "";
  let headerPairs: [string, string][] = [];
  try {
    servers.raw = await startServer("raw", `${dir}/raw.log`);
    servers.stack = await startServer("stack", `${dir}/stack.log`);
    headerPairs = await stackHeaders(servers.stack.url);
    if (layered) servers.layered = await startServer("layered", `${dir}/layered.log`);
    servers.headers = await startServer("headers", `${dir}/headers.log`, {
      BENCH_STACK_HEADERS: JSON.stringify(headerPairs),
    });
    for (const v of variants) await wrk(servers[v]!.url, script, 2, CONNECTIONS);
    for (const v of variants) await countAndTruncate(servers[v]!.logFile);

    for (let round = 1; round <= rounds; round++) {
      for (const v of variants) {
        const server = servers[v]!;
        const cpuBefore = await server.cpuUs();
        const r = await wrk(server.url, script, seconds, CONNECTIONS);
        cpuPerRequest[v].push((await server.cpuUs() - cpuBefore) / r.requests);
        results[v].push(r);
        const lines = await countAndTruncate(server.logFile);
        let note = "";
        if (v === "stack" || v === "layered") {
          // Every completed request must have produced its access line (a few more: requests cut off at the end).
          if (lines < r.requests) {
            throw new Error(`${v} wrote ${lines} log lines for ${r.requests} requests: is the access log on?`);
          }
          if (v === "stack") logLines.push(lines);
          note = `  (${lines} access lines written)`;
        }
        console.log(
          `round ${round} ${v.padEnd(7)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50Ms.toFixed(2)} ms` +
            `  p99 ${r.p99Ms.toFixed(2)} ms${note}`,
        );
      }
    }
  } finally {
    loadAfter = await loadavg();
    for (const v of variants) await servers[v]?.stop();
    await Deno.remove(dir, { recursive: true });
  }

  const summary = (rs: WrkResult[]) => ({
    rps: median(rs.map((r) => r.rps)),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
  });
  const raw = summary(results.raw);
  const headers = summary(results.headers);
  const stack = summary(results.stack);
  // Each round's stack against the floor run just before it, so drift in machine load cancels out.
  const cpuRatios = cpuPerRequest.stack.map((c, i) => cpuPerRequest.headers[i] / c);
  const cpuRatio = median(cpuRatios);
  const p99Diffs = results.stack.map((r, i) => r.p99Ms - results.headers[i].p99Ms);
  const p99Diff = median(p99Diffs);
  const throughputRatio = median(results.stack.map((r, i) => r.rps / results.headers[i].rps));
  const floorOfRaw = median(results.headers.map((r, i) => r.rps / results.raw[i].rps));
  const stackOfRaw = median(results.stack.map((r, i) => r.rps / results.raw[i].rps));
  const cpuMet = cpuRatio >= TARGET_FLOOR_RATIO;
  // The composable middleware the fused stack replaced, when run: the before of a before/after in one run.
  const layeredRatios = cpuPerRequest.layered.map((c, i) => cpuPerRequest.headers[i] / c);
  const layeredP99Diffs = results.layered.map((r, i) => r.p99Ms - results.headers[i].p99Ms);
  const p99Met = p99Diff <= TARGET_P99_MS;
  const fmtSummary = (s: typeof raw) =>
    `${s.rps.toFixed(0)} req/s (p50 ${s.p50Ms.toFixed(2)} ms, p99 ${s.p99Ms.toFixed(2)} ms)`;
  const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(2)}`;
  const cpu = (v: Variant) => `${median(cpuPerRequest[v]).toFixed(1)} µs`;
  console.log(`\nmedian raw   ${fmtSummary(raw)}`);
  console.log(`median floor ${fmtSummary(headers)}`);
  console.log(`median stack ${fmtSummary(stack)}`);
  console.log(
    `server CPU per request (median): raw ${cpu("raw")}, floor ${cpu("headers")}, stack ${cpu("stack")}`,
  );
  console.log(
    `floor ratio (floor CPU / stack CPU) ${cpuRatio.toFixed(3)} (per round ${
      cpuRatios.map((r) => r.toFixed(3)).join(", ")
    }; target >= ${TARGET_FLOOR_RATIO}, i.e. stack <= ${(1 / TARGET_FLOOR_RATIO).toFixed(2)} x floor: ${
      cpuMet ? "met" : "NOT met"
    })`,
  );
  console.log(
    `p99 stack - floor ${signed(p99Diff)} ms (per round ${p99Diffs.map(signed).join(", ")} ms; ` +
      `target <= +${TARGET_P99_MS} ms: ${p99Met ? "met" : "NOT met"})`,
  );
  if (layered) {
    console.log(
      `layered (before): CPU ${cpu("layered")}, floor ratio ${median(layeredRatios).toFixed(3)} (per round ${
        layeredRatios.map((r) => r.toFixed(3)).join(", ")
      }), p99 - floor ${signed(median(layeredP99Diffs))} ms, ${summary(results.layered).rps.toFixed(0)} req/s`,
    );
  }
  console.log(
    `req/s: stack/floor ${throughputRatio.toFixed(3)}, floor/raw ${floorOfRaw.toFixed(3)}, stack/raw ${
      stackOfRaw.toFixed(3)
    }`,
  );

  if (args.includes("--no-write")) return;
  const nproc = (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(/^processor\s*:/gm)?.length ??
    navigator.hardwareConcurrency;
  const command = ["deno task bench:http", ...args].join(" ");
  const section = `## HTTP stack

\`${command}\` (\`scripts/bench_http.ts\`), run ${new Date().toISOString().slice(0, 10)}.

Machine: ${nproc} cores (${await cpuModel()}), ${Deno.build.os}/${Deno.build.arch}, Deno ${Deno.version.deno}, ${
    wrkVersion.split(" [")[0]
  }; servers and wrk on the same machine over loopback. Load average (1/5/15 min) before ${loadBefore}, after ${loadAfter}.

The same handler (\`GET ${PATH}\` answering \`{"pong":true}\`) is served by the servers below, each in its own
\`deno run --allow-all\` subprocess: **raw**, \`Deno.serve\` calling the handler directly; and **stack**, a platform
\`Service\` with its default stack (request context, tracing, security headers, recovery, access log, RED metrics, body
limit, fused into one wrapper) plus \`cors()\` (an allowed origin) and \`rateLimit()\` keyed by the \`X-Api-Key\` header (capacity never
reached), behind a \`Router\`. The stack writes its access log as in production: the default logger at info to stdout,
redirected to a file (the lines are counted after each run: ${
    logLines.join(", ")
  } lines, at least one per completed request). wrk (1 thread, ${CONNECTIONS} connections, ${seconds} s per run) sends
all the same \`Origin\` and \`X-Api-Key\` headers; the variants alternate (${
    variants.map((v) => v === "headers" ? "floor" : v).join(", ")
  }) for ${rounds} rounds. The table
shows medians; each ratio is the median of the rounds' ratios, each round's stack against the floor run just before it.

| variant | req/s | p50 | p99 | server CPU per request |
| --- | ---: | ---: | ---: | ---: |
| raw \`Deno.serve\` | ${raw.rps.toFixed(0)} | ${raw.p50Ms.toFixed(2)} ms | ${raw.p99Ms.toFixed(2)} ms | ${cpu("raw")} |
| floor: raw + the stack's ${headerPairs.length} response headers | ${headers.rps.toFixed(0)} | ${
    headers.p50Ms.toFixed(2)
  } ms | ${headers.p99Ms.toFixed(2)} ms | ${cpu("headers")} |
${
    layered
      ? `| layered middleware (before) | ${summary(results.layered).rps.toFixed(0)} | ${
        summary(results.layered).p50Ms.toFixed(2)
      } ms | ${summary(results.layered).p99Ms.toFixed(2)} ms | ${cpu("layered")} |\n`
      : ""
  }| full stack | ${stack.rps.toFixed(0)} | ${stack.p50Ms.toFixed(2)} ms | ${stack.p99Ms.toFixed(2)} ms | ${
    cpu("stack")
  } |

Server CPU per request is the server process's user + system time over the run (from \`/proc/<pid>/stat\`) divided by
the requests wrk completed: it includes the kernel's share of the loopback TCP.

The floor is raw \`Deno.serve\` answering with the response headers the stack sends (copied from one of its answers:
${headerPairs.map(([k]) => `\`${k}\``).join(", ")}), each set once, with no code around it: what those headers cost
the runtime (building, copying into the response, writing and parsing them) whatever code produces them. It reaches
${floorOfRaw.toFixed(3)} of raw's req/s.

Floor ratio (floor CPU per request / stack CPU per request, median of the rounds' ratios): **${
    cpuRatio.toFixed(3)
  }** (target >= ${TARGET_FLOOR_RATIO}, the stack at most ${(1 / TARGET_FLOOR_RATIO).toFixed(2)} × the floor: ${
    cpuMet ? "met" : "NOT met"
  }). p99 stack - floor: **${signed(p99Diff)} ms** (median of the rounds; target <= +${TARGET_P99_MS} ms: ${
    p99Met ? "met" : "NOT met"
  }). Req/s: stack/floor ${throughputRatio.toFixed(3)}, stack/raw ${stackOfRaw.toFixed(3)}.${
    layered
      ? ` The same stack as composable middleware (the layered row, \`--layered\`): floor ratio ${
        median(layeredRatios).toFixed(3)
      } (per round ${layeredRatios.map((r) => r.toFixed(3)).join(", ")}), p99 - floor ${
        signed(median(layeredP99Diffs))
      } ms.`
      : ""
  }

Per round (CPU per request, req/s, p99): raw ${
    results.raw.map((r, i) =>
      `${cpuPerRequest.raw[i].toFixed(1)} µs ${r.rps.toFixed(0)} req/s ${r.p99Ms.toFixed(2)} ms`
    )
      .join("; ")
  }. Floor ${
    results.headers.map((r, i) =>
      `${cpuPerRequest.headers[i].toFixed(1)} µs ${r.rps.toFixed(0)} req/s ${r.p99Ms.toFixed(2)} ms`
    ).join("; ")
  }. Stack ${
    results.stack.map((r, i) =>
      `${cpuPerRequest.stack[i].toFixed(1)} µs ${r.rps.toFixed(0)} req/s ${r.p99Ms.toFixed(2)} ms`
    )
      .join("; ")
  }. Floor ratios ${cpuRatios.map((r) => r.toFixed(3)).join(", ")}; p99 differences ${
    p99Diffs.map(signed).join(", ")
  } ms.
`;
  console.log(`wrote ${await writePerformanceSection("## HTTP stack", section)}`);
}
