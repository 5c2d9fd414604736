import { Registry } from "prom-client";
import {
  accessLog,
  bodyLimit,
  chain,
  cors,
  type Handler,
  json,
  type Middleware,
  rateLimit,
  recovery,
  requestContext,
  Router,
  securityHeaders,
  tracing,
} from "../http/mod.ts";
import { createLogger } from "../log/mod.ts";
import { templateAccessLine } from "./access_line.ts";
import { fusedStack } from "./fused_stack.ts";
import { redMetrics } from "./metrics.ts";
import { RedCounters } from "./red_counters.ts";

// Per-request JS cost of the service's default stack, layered against fused, calling the handler with a Request (no
// socket): what `deno task bench:http` measures through a server, without the runtime's share. Lines go nowhere.
const sink = () => {};
const logger = createLogger("bench", { level: "info", write: sink });
const router = new Router().get("/v1/ping", () => Promise.resolve(json({ pong: true })));
const extra: Middleware[] = [
  cors({ origins: ["https://shop.example"] }),
  rateLimit({ key: (req) => req.headers.get("x-api-key") ?? undefined, capacity: 1e9, refillPerSec: 1e9 }),
];
const inner = (mw: Middleware[]) => chain(bodyLimit(), ...mw)(router.handler);
const layered = (mw: Middleware[]): Handler =>
  chain(
    requestContext(),
    tracing(),
    securityHeaders(),
    recovery(logger),
    accessLog(logger),
    redMetrics(new Registry()),
  )(inner(mw));
const fused = (mw: Middleware[]): Handler =>
  fusedStack(
    {
      logger,
      accessLine: templateAccessLine("bench", { level: "info", write: sink }),
      red: new RedCounters(new Registry()),
    },
    inner(mw),
  );

const get = () =>
  new Request("http://api/v1/ping", { headers: { origin: "https://shop.example", "x-api-key": "bench-client" } });

function bench(name: string, h: Handler, group: string, baseline = false) {
  Deno.bench(name, { group, baseline, n: 100_000, warmup: 20_000 }, async () => {
    const res = await h(get());
    await res.body?.cancel();
  });
}

bench("router alone", router.handler, "stack", true);
bench("layered default stack", layered([]), "stack");
bench("fused default stack", fused([]), "stack");
bench("router + cors + rateLimit", inner(extra), "with cors and rate limit", true);
bench("layered + cors + rateLimit", layered(extra), "with cors and rate limit");
bench("fused + cors + rateLimit", fused(extra), "with cors and rate limit");

// `deno run -A platform/service/fused_stack_bench.ts --cpu`: the same stacks, measured by the process's CPU time
// (user + system, `process.cpuUsage()`) over many sequential requests instead of wall time per iteration, which on a
// shared, loaded machine mostly measures the other processes. Prints the stack's own CPU per request: with the stack
// minus without it, both in the same process, interleaved over a few rounds (median).
if (Deno.args.includes("--cpu")) {
  const { default: process } = await import("node:process");
  const n = 100_000;
  const perRequest = async (h: Handler): Promise<number> => {
    const before = process.cpuUsage();
    for (let i = 0; i < n; i++) await (await h(get())).body?.cancel();
    const used = process.cpuUsage(before);
    return (used.user + used.system) / n;
  };
  const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[xs.length >> 1];
  const variants = { "router + cors + rateLimit": inner(extra), layered: layered(extra), fused: fused(extra) };
  const rounds: Record<string, number[]> = {};
  for (let round = 0; round < 4; round++) {
    for (const [name, h] of Object.entries(variants)) {
      const us = await perRequest(h);
      // The first round warms up: it is not counted.
      if (round > 0) (rounds[name] ??= []).push(us);
    }
  }
  const floor = median(rounds["router + cors + rateLimit"]);
  for (const [name, xs] of Object.entries(rounds)) {
    const stack = name === "router + cors + rateLimit" ? "" : `, the stack's own ${(median(xs) - floor).toFixed(2)} µs`;
    console.log(
      `${name}: ${median(xs).toFixed(2)} µs CPU per request (per round ${xs.map((x) => x.toFixed(2))})${stack}`,
    );
  }
}
