import { contextFromHeaders, holdDeadlineTimer, openContext, runWithContext } from "./mod.ts";

// Per-request cost of opening and disposing a request context, as the HTTP stack does with a request that carries no
// deadline header (the default budget applies), against a plain object in the same AsyncLocalStorage.
// Held as a Service holds it, so the shared timer's interval is not started and stopped around every context.
const release = holdDeadlineTimer();
globalThis.addEventListener("unload", release);
const headers = new Headers({ origin: "https://shop.example", "x-api-key": "bench-client" });
const req = new Request("http://api/v1/ping", { headers });
const noop = () => {};

Deno.bench("plain object in runWithContext", { group: "context", baseline: true, n: 200_000, warmup: 20_000 }, () => {
  const ctx = { requestId: "r-1", signal: undefined as unknown as AbortSignal, deadline: Date.now() + 10_000 };
  runWithContext(ctx, noop);
});

Deno.bench("contextFromHeaders + runWithContext + dispose", { group: "context", n: 200_000, warmup: 20_000 }, () => {
  const { ctx, dispose } = contextFromHeaders((name) => headers.get(name), {
    defaultBudgetMs: 10_000,
    signal: () => req.signal,
    onEnd: noop,
  });
  runWithContext(ctx, noop);
  dispose();
});

Deno.bench("openContext + runWithContext + dispose()", { group: "context", n: 200_000, warmup: 20_000 }, () => {
  const ctx = openContext(headers, { defaultBudgetMs: 10_000, signal: req, onEnd: noop });
  runWithContext(ctx, noop);
  ctx.dispose();
});

// `deno run -A platform/context/context_bench.ts --cpu`: the same two cases by the process's CPU time (user + system)
// over many iterations, interleaved, which a shared and loaded machine distorts less than wall time per iteration.
if (Deno.args.includes("--cpu")) {
  const { default: process } = await import("node:process");
  const n = 500_000;
  const signal = new AbortController().signal;
  const plain = () => runWithContext({ requestId: "r-1", signal, deadline: Date.now() + 10_000 }, noop);
  const opened = () => {
    const ctx = openContext(headers, { defaultBudgetMs: 10_000, signal: req, onEnd: noop });
    runWithContext(ctx, noop);
    ctx.dispose();
  };
  const perCall = async (f: () => void): Promise<number> => {
    const before = process.cpuUsage();
    // A turn of the event loop now and then, as between requests.
    for (let i = 0; i < n; i++) if ((f(), i & 63) === 0) await Promise.resolve();
    const used = process.cpuUsage(before);
    return (used.user + used.system) / n;
  };
  const extra: number[] = [];
  for (let round = 0; round < 4; round++) {
    const [a, b] = [await perCall(plain), await perCall(opened)];
    if (round > 0) extra.push(b - a);
  }
  console.log(`a context costs ${extra.map((x) => x.toFixed(2)).join(", ")} µs CPU more than a plain object`);
  release();
}
