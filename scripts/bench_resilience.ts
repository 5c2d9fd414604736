/**
 * `deno task bench:resilience`: what the resilience policy costs a healthy call, and what it saves a failing target.
 *
 * 1. Happy path: `policy.execute(call)` (retry + the service's retry budget + a closed circuit breaker) against the
 *    bare `call()` in the same run, `--calls` sequential calls per round, `--rounds` rounds alternating the variants;
 *    the figure is the median per-call time and the median of the per-round differences (goal: at most 2 µs).
 * 2. Outage: a real HTTP server on loopback answers every request 503; `--clients` concurrent callers make
 *    `--outage-calls` calls in all through `createHttpClient` (4 attempts, backoff 1-5 ms), without a budget, with the
 *    default `RetryBudget` (20 % of calls + 10/s), and with the budget and a circuit breaker. The figure is the
 *    requests the server received per client call.
 *
 *   deno task bench:resilience [--calls 200000] [--rounds 5] [--clients 20] [--outage-calls 2000]
 */
import { createHttpClient, UnavailableError } from "@trellis/platform/http";
import { CircuitBreaker, resiliencePolicy, RetryBudget } from "@trellis/platform/resilience";

const args = Deno.args;
const option = (name: string, dflt: number) => args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt;
const CALLS = option("--calls", 200_000);
const ROUNDS = option("--rounds", 5);
const CLIENTS = option("--clients", 20);
const OUTAGE_CALLS = option("--outage-calls", 2_000);
const GOAL_NS = 2_000;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function happyPath(): Promise<void> {
  const call = () => Promise.resolve(42);
  const budget = new RetryBudget();
  const policy = resiliencePolicy({ budget, breaker: new CircuitBreaker("bench") });
  const withTimeout = resiliencePolicy({ budget, breaker: new CircuitBreaker("bench-timeout"), timeoutMs: 1_000 });
  const variants: [string, () => Promise<number>][] = [
    ["bare call", call],
    ["policy (retry, budget, breaker)", () => policy.execute(call)],
    ["policy + its own timeoutMs", () => withTimeout.execute(call)],
  ];
  const perCall = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  const run = async (fn: () => Promise<number>, n: number) => {
    const start = performance.now();
    for (let i = 0; i < n; i++) await fn();
    return (performance.now() - start) * 1e6 / n;
  };
  for (const [, fn] of variants) await run(fn, CALLS / 10); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, fn] of variants) perCall.get(name)!.push(await run(fn, CALLS));
  }
  const bare = perCall.get("bare call")!;
  console.log(`happy path, ${CALLS} sequential calls x ${ROUNDS} rounds (median ns per call; overhead vs bare):`);
  for (const [name] of variants) {
    const times = perCall.get(name)!;
    const overhead = median(times.map((t, i) => t - bare[i]));
    const verdict = name === "bare call"
      ? ""
      : `  overhead ${overhead.toFixed(0)} ns ${overhead <= GOAL_NS ? "(<= 2 us goal)" : "(OVER the 2 us goal)"}`;
    console.log(`  ${name.padEnd(34)} ${median(times).toFixed(0).padStart(6)} ns${verdict}`);
  }
}

async function outage(): Promise<void> {
  let received = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    received++;
    return new Response(null, { status: 503 });
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  const retry = { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 5 };
  const variants: [string, () => ReturnType<typeof resiliencePolicy>][] = [
    ["retries only", () => resiliencePolicy({ retry })],
    ["retries + budget", () => resiliencePolicy({ retry, budget: new RetryBudget() })],
    [
      "retries + budget + breaker",
      () =>
        resiliencePolicy({ retry, budget: new RetryBudget(), breaker: new CircuitBreaker("down", { openMs: 60_000 }) }),
    ],
  ];
  console.log(
    `outage: a server answering 503, ${OUTAGE_CALLS} client calls from ${CLIENTS} concurrent callers, ` +
      `maxAttempts ${retry.maxAttempts}:`,
  );
  try {
    for (const [name, make] of variants) {
      const client = createHttpClient({ baseUrl: url, policy: make(), timeoutMs: 5_000 });
      const before = received;
      let left = OUTAGE_CALLS;
      const started = performance.now();
      await Promise.all(Array.from({ length: CLIENTS }, async () => {
        while (left-- > 0) {
          await client.request("GET", "/").catch((err) => {
            if (!(err instanceof UnavailableError)) throw err;
          });
        }
      }));
      const ms = performance.now() - started;
      const perCall = (received - before) / OUTAGE_CALLS;
      console.log(
        `  ${name.padEnd(28)} ${perCall.toFixed(2)} requests at the server per client call (${ms.toFixed(0)} ms)`,
      );
    }
  } finally {
    await server.shutdown();
  }
}

await happyPath();
await outage();
