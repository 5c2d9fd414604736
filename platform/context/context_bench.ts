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
