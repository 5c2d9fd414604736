/**
 * `deno task bench:auth`: what bearer-token authentication costs an HTTP service, as a ratio measured in one run.
 *
 * One `Service` (the full platform stack: request context, recovery, access log, RED metrics) serves the same small
 * JSON route twice: `/open` without authentication and `/v1/ping` behind `authenticate()` with a verifier over a
 * remote JWKS (served in-process by `jwksHandler`, as the auth service serves it). wrk (1 thread, 50 connections)
 * sends both the same `Authorization` header, choosing one of 100 valid tokens round-robin per request, so the only
 * difference between the variants is the verification. Variants alternate for `--rounds` rounds each; the ratio is
 * the median of the per-round ratios. Then the verifier alone, in a loop: cold (cache cleared before each call, so the signature is
 * checked) and cached. Writes the figures into the "Authentication" section of docs/performance.md.
 *
 *   deno task bench:auth [--duration 10] [--rounds 3] [--no-write]
 */
import {
  authenticate,
  createIssuer,
  createVerifier,
  exportPublicJwk,
  generateSigningKey,
  jwksHandler,
  remoteJwks,
} from "@trellis/platform/auth";
import { json, Router } from "@trellis/platform/http";
import { createLogger } from "@trellis/platform/log";
import { Service } from "@trellis/platform/service";
import { freePorts } from "../tests/support/ports.ts";
import {
  cpuModel,
  loadavg,
  median,
  writePerformanceSection,
  wrk as runWrk,
  WRK_DONE_LUA,
  type WrkResult,
  wrkVersion as readWrkVersion,
} from "./wrk.ts";

const TOKENS = 100;
const CONNECTIONS = 50;
const TARGET = 0.8;
const ISSUER = "https://auth.bench";
const AUDIENCE = "trellis-api";

const args = Deno.args;
const option = (name: string, dflt: number) => args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt;
const durationSec = option("--duration", 10);
const rounds = option("--rounds", 3);
if (!(durationSec >= 1 && durationSec <= 10 && Number.isInteger(rounds) && rounds >= 1)) {
  console.error("usage: deno task bench:auth [--duration 1..10] [--rounds N] [--no-write]");
  Deno.exit(2);
}

const wrkVersion = await readWrkVersion();
if (wrkVersion === undefined) {
  console.error("wrk is not installed: run `sudo apt-get install -y wrk` (Debian/Ubuntu), then try again");
  Deno.exit(1);
}

// Access lines are dropped (warn and above only) so the baseline is the stack at its cheapest and the ratio is
// the harsher one; an info-level access log would add the same cost to both variants.
const log = createLogger("bench-auth", { level: "warn" });

const key = await generateSigningKey();
const published = [await exportPublicJwk(key)];
const [authPort] = freePorts(1);
const auth = new Service({ name: "bench-jwks", port: authPort, logger: log });
auth.handle(new Router().get("/.well-known/jwks.json", jwksHandler(() => published)).handler);

const jwks = remoteJwks(`http://127.0.0.1:${authPort}/.well-known/jwks.json`);
const verifier = createVerifier({ issuer: ISSUER, audience: AUDIENCE, keys: jwks });
const ping = () => Promise.resolve(json({ pong: true }));
const authenticated = authenticate(verifier)(ping);
const api = new Service({ name: "bench-api", logger: log });
api.check("jwks", async () => {
  if (!(await jwks.ready())) throw new Error(`JWKS not fetched: ${jwks.lastError}`);
});
api.handle(new Router().get("/open", ping).get("/v1/ping", (req) => authenticated(req)).handler);

const issuer = createIssuer({ issuer: ISSUER, key });
const tokens = await Promise.all(
  Array.from(
    { length: TOKENS },
    (_, i) => issuer.issue({ sub: `user-${i}`, aud: AUDIENCE, scopes: ["products:read"], ttlSeconds: 3600 }),
  ),
);

type Result = WrkResult;

const loadBefore = await loadavg();
const dir = await Deno.makeTempDir({ prefix: "trellis-bench-auth-" });
const results: Record<"open" | "auth", Result[]> = { open: [], auth: [] };
let verify: { coldUs: number; cachedUs: number };
let loadAfter = "";
try {
  await auth.start();
  await api.start();
  const script = `${dir}/tokens.lua`;
  await Deno.writeTextFile(script, luaScript(tokens));
  const variants = [["open", "/open"], ["auth", "/v1/ping"]] as const;

  // Both variants must answer 200 to every token before anything is timed.
  for (const [, path] of variants) {
    for (const token of tokens) {
      const res = await fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
      await res.body?.cancel();
      if (res.status !== 200) throw new Error(`${path} answered ${res.status} to a valid token`);
    }
  }
  for (const [, path] of variants) await wrk(`${api.url}${path}`, script, 2);

  for (let round = 1; round <= rounds; round++) {
    for (const [name, path] of variants) {
      const r = await wrk(`${api.url}${path}`, script, durationSec);
      results[name].push(r);
      console.log(
        `round ${round} ${name.padEnd(4)} ${r.rps.toFixed(0).padStart(7)} req/s  p50 ${r.p50Ms.toFixed(2)} ms` +
          `  p99 ${r.p99Ms.toFixed(2)} ms`,
      );
    }
  }
  verify = await verifierLoop();
} finally {
  loadAfter = await loadavg();
  await api.stop();
  await auth.stop();
  await Deno.remove(dir, { recursive: true });
}

const summary = (rs: Result[]) => ({
  rps: median(rs.map((r) => r.rps)),
  p50Ms: median(rs.map((r) => r.p50Ms)),
  p99Ms: median(rs.map((r) => r.p99Ms)),
});
const open = summary(results.open);
const authed = summary(results.auth);
// Each authenticated run against the unauthenticated run just before it, so drift in machine load cancels out.
const ratios = results.auth.map((r, i) => r.rps / results.open[i].rps);
const ratio = median(ratios);
console.log(
  `\nunauthenticated ${open.rps.toFixed(0)} req/s (p50 ${open.p50Ms.toFixed(2)} ms, p99 ${open.p99Ms.toFixed(2)} ms)`,
);
console.log(
  `authenticated   ${authed.rps.toFixed(0)} req/s (p50 ${authed.p50Ms.toFixed(2)} ms, p99 ${
    authed.p99Ms.toFixed(2)
  } ms)`,
);
console.log(
  `ratio authenticated/unauthenticated ${ratio.toFixed(3)} (median of per-round ${
    ratios.map((r) => r.toFixed(3)).join(", ")
  }; target >= ${TARGET})`,
);
console.log(`verify cold ${verify.coldUs.toFixed(1)} µs/token, cached ${verify.cachedUs.toFixed(2)} µs/token`);

if (!args.includes("--no-write")) {
  const cpu = await cpuModel();
  const section = `## Authentication

\`deno task bench:auth\` (\`scripts/bench_auth.ts\`), run ${new Date().toISOString().slice(0, 10)}.

Machine: ${navigator.hardwareConcurrency} cores (${cpu}), ${Deno.build.os}/${Deno.build.arch}, Deno ${Deno.version.deno}, ${
    wrkVersion.split(" [")[0]
  }; server and wrk on the same machine over loopback. Load average (1/5/15 min) before ${loadBefore}, after ${loadAfter}.

One \`Service\` (full platform stack, access lines below warn dropped) serves the same small JSON route twice:
\`/open\` without authentication and \`/v1/ping\` behind \`authenticate()\` with a verifier over a remote JWKS. wrk
(1 thread, ${CONNECTIONS} connections, ${durationSec} s per run) sends both the same \`Authorization\` header with one of
${TOKENS} valid ES256 tokens chosen round-robin; the variants alternate for ${rounds} rounds each. The table shows
medians; the ratio is the median of each round's authenticated/unauthenticated ratio.

| variant | req/s | p50 | p99 |
| --- | ---: | ---: | ---: |
| unauthenticated (\`/open\`) | ${open.rps.toFixed(0)} | ${open.p50Ms.toFixed(2)} ms | ${open.p99Ms.toFixed(2)} ms |
| authenticated (\`/v1/ping\`) | ${authed.rps.toFixed(0)} | ${authed.p50Ms.toFixed(2)} ms | ${
    authed.p99Ms.toFixed(2)
  } ms |

Ratio authenticated/unauthenticated: **${ratio.toFixed(3)}** (target >= ${TARGET}: ${
    ratio >= TARGET ? "met" : "NOT met"
  }).

Per round (req/s): unauthenticated ${results.open.map((r) => r.rps.toFixed(0)).join(", ")}; authenticated ${
    results.auth.map((r) => r.rps.toFixed(0)).join(", ")
  }; ratios ${ratios.map((r) => r.toFixed(3)).join(", ")}.

Verifier alone, in a loop over the same ${TOKENS} tokens: cold (cache cleared before each call, so parsing and the
ECDSA P-256 signature check run every time) **${verify.coldUs.toFixed(1)} µs/token**; cached (a map lookup keyed by
the token) **${verify.cachedUs.toFixed(2)} µs/token**. With tokens reused, the HTTP figures above measure the cached
path; a client that sends a fresh token per request pays the cold cost on each.
`;
  const path = await writePerformanceSection("## Authentication", section);
  console.log(`wrote ${path}`);
}

/** Runs wrk against `url`; the Lua script's `done` prints one JSON line with the figures. */
function wrk(url: string, script: string, seconds: number): Promise<Result> {
  return runWrk(url, script, seconds, CONNECTIONS);
}

function luaScript(tokens: string[]): string {
  return `local tokens = { ${tokens.map((t) => `"${t}"`).join(", ")} }
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. tokens[i] })
end
${WRK_DONE_LUA}`;
}

/** µs per `verify` call: cold with the cache cleared before each call, and cached. */
async function verifierLoop(): Promise<{ coldUs: number; cachedUs: number }> {
  const v = createVerifier({ issuer: ISSUER, audience: AUDIENCE, keys: jwks });
  const time = async (n: number, before: () => void) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      before();
      await v.verify(tokens[i % TOKENS]);
    }
    return (performance.now() - t0) * 1000 / n;
  };
  await time(500, () => v.clear());
  const coldUs = await time(3_000, () => v.clear());
  await time(TOKENS, () => {});
  const cachedUs = await time(300_000, () => {});
  return { coldUs, cachedUs };
}
