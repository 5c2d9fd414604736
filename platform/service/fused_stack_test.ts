import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { type Context, currentContext, runWithContext } from "../context/mod.ts";
import {
  accessLog,
  chain,
  type Handler,
  HttpError,
  json,
  recovery,
  requestContext,
  Router,
  securityHeaders,
  tracing,
} from "../http/mod.ts";
import { createLogger, type Logger } from "../log/mod.ts";
import { within } from "../testing/mod.ts";
import { loggerAccessLine, templateAccessLine } from "./access_line.ts";
import { fusedStack } from "./fused_stack.ts";
import { redMetrics } from "./metrics.ts";
import { RedCounters } from "./red_counters.ts";

// The fused stack must behave as the layered middleware it replaces. Every case runs against both and compares what a
// client, a log reader and a dashboard see: headers, problem bodies, request id and trace handling, deadlines, access
// lines and the /metrics text.

type Stack = (logger: Logger, registry: Registry, inner: Handler, defaultBudgetMs?: number) => Handler;

const STACKS: Record<string, Stack> = {
  layered: (logger, registry, inner, defaultBudgetMs) =>
    chain(
      requestContext({ defaultBudgetMs }),
      tracing(),
      securityHeaders(),
      recovery(logger),
      accessLog(logger),
      redMetrics(registry),
    )(inner),
  fused: (logger, registry, inner, defaultBudgetMs) =>
    fusedStack(
      { logger, accessLine: loggerAccessLine(logger), red: new RedCounters(registry), defaultBudgetMs },
      inner,
    ),
};

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** A stack around a router with the routes the cases need, its log lines and registry. */
function setup(stack: Stack, defaultBudgetMs?: number) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("svc", { level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  const registry = new Registry();
  registry.setDefaultLabels({ service: "svc" });
  const seen: { ctx?: Context } = {};
  const router = new Router()
    .get("/v1/orders/:id", (_req, { id }) => {
      seen.ctx = currentContext();
      return Promise.resolve(json({ id }));
    })
    .get("/v1/strict", () => {
      const res = new Response("x");
      res.headers.set("content-security-policy", "default-src 'self'");
      return Promise.resolve(res);
    })
    .get("/v1/boom", () => Promise.reject(new Error("secret internals")))
    .get("/v1/conflict", () => Promise.reject(new HttpError(409, "conflict", "Conflict", { detail: "taken" })))
    .get("/v1/redirect", () => Promise.resolve(Response.redirect("http://svc/elsewhere", 303)))
    .get("/v1/slow", async () => {
      const signal = currentContext()!.signal;
      seen.ctx = currentContext();
      await within(aborted(signal), 5_000, "the handler's signal to abort at the deadline");
      return new Response("too late");
    });
  const handler = stack(logger, registry, router.handler, defaultBudgetMs);
  return { handler, lines, registry, seen };
}

/** Status, headers (random ids masked) and body of a response. */
async function observe(res: Response) {
  const headers: Record<string, string> = {};
  for (const [k, v] of res.headers) headers[k] = k === "x-request-id" && !v.startsWith("rid-") ? "<fresh>" : v;
  if (headers.traceparent) {
    headers.traceparent = headers.traceparent.replace(
      /^00-([0-9a-f]{32})-[0-9a-f]{16}-/,
      (_, trace) => `00-${trace === "4bf92f3577b34da6a3ce929d0e0e4736" ? trace : "<new>"}-<span>-`,
    );
  }
  const text = await res.text();
  return { status: res.status, headers, body: text.replace(/"requestId":"[^"]*"/, '"requestId":"<id>"') };
}

/** Log lines with what varies between runs masked. */
function masked(lines: Record<string, unknown>[]) {
  return lines.map((l) => {
    const out: Record<string, unknown> = { ...l, ts: "<ts>" };
    if (typeof l.ms === "number") out.ms = "<ms>";
    if (typeof l.requestId === "string" && !l.requestId.startsWith("rid-")) out.requestId = "<fresh>";
    if (typeof l.traceId === "string" && l.traceId !== "4bf92f3577b34da6a3ce929d0e0e4736") out.traceId = "<new>";
    // Each stack starts its own span, so the span id a logger line carries differs between the two.
    if (typeof l.spanId === "string") out.spanId = "<span>";
    if (l.err) out.err = { ...(l.err as Record<string, unknown>), stack: "<stack>" };
    return Object.entries(out);
  });
}

/** Runs `exercise` against both stacks and returns what each produced. */
async function both<T>(exercise: (env: ReturnType<typeof setup>) => Promise<T>): Promise<Record<string, T>> {
  const out: Record<string, T> = {};
  for (const [name, stack] of Object.entries(STACKS)) out[name] = await exercise(setup(stack));
  return out;
}

Deno.test("the fused stack answers a routed request as the layered stack does: ids, trace, security headers, context", async () => {
  const got = await both(async ({ handler, lines, seen }) => {
    const res = await handler(
      new Request("http://svc/v1/orders/o-1", { headers: { "x-request-id": "rid-1", traceparent: TRACEPARENT } }),
    );
    const ctx = seen.ctx!;
    assert.equal(ctx.requestId, "rid-1");
    assert.equal(ctx.traceId, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert.equal(ctx.route, "/v1/orders/:id");
    assert.ok(ctx.deadline! > Date.now(), "the default budget gives the request a deadline");
    assert.equal(res.headers.get("traceparent"), ctx.traceparent, "the response names this hop's span");
    return { res: await observe(res), lines: masked(lines) };
  });
  assert.deepEqual(got.fused, got.layered);
  const { headers, body } = got.fused.res;
  assert.equal(body, '{"id":"o-1"}');
  assert.equal(headers["x-request-id"], "rid-1");
  assert.equal(headers.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-<span>-01");
  assert.equal(headers["x-frame-options"], "DENY");
  assert.equal(headers["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
  assert.deepEqual(Object.fromEntries(got.fused.lines[0]), {
    ts: "<ts>",
    level: "info",
    service: "svc",
    msg: "request",
    requestId: "rid-1",
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
    spanId: "<span>",
    method: "GET",
    route: "/v1/orders/:id",
    status: 200,
    ms: "<ms>",
    bytes: 12,
  });
});

Deno.test("the fused stack replaces an unusable request id and traceparent as the layered stack does", async () => {
  const got = await both(async ({ handler, lines }) => {
    const res = await handler(
      new Request("http://svc/v1/orders/o-2", {
        headers: {
          "x-request-id": "has space",
          traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        },
      }),
    );
    assert.match(res.headers.get("x-request-id")!, /^[A-Za-z0-9._:-]{1,128}$/);
    assert.match(res.headers.get("traceparent")!, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.doesNotMatch(res.headers.get("traceparent")!, /^00-0{32}/);
    return { res: await observe(res), lines: masked(lines) };
  });
  assert.deepEqual(got.fused, got.layered);
  assert.equal(got.fused.res.headers["x-request-id"], "<fresh>");
});

Deno.test("the fused stack answers thrown errors with the same problem+json, headers and log lines", async () => {
  const got = await both(async ({ handler, lines }) => {
    const out = [];
    for (const path of ["/v1/boom", "/v1/conflict", "/v1/nowhere"]) {
      out.push(
        await observe(await handler(new Request(`http://svc${path}`, { headers: { "x-request-id": "rid-e" } }))),
      );
    }
    return { out, lines: masked(lines) };
  });
  assert.deepEqual(got.fused, got.layered);
  const [boom, conflict, missing] = got.fused.out;
  assert.equal(boom.status, 500);
  assert.equal(boom.headers["content-type"], "application/problem+json");
  assert.equal(boom.headers["x-request-id"], "rid-e");
  assert.equal(boom.headers["x-content-type-options"], "nosniff");
  assert.ok(!boom.body.includes("secret internals"), boom.body);
  assert.match(boom.body, /"requestId":"<id>"/);
  assert.equal(conflict.status, 409);
  assert.equal(missing.status, 404);
  const logged = got.fused.lines.map((l) => Object.fromEntries(l));
  assert.deepEqual(logged.map((l) => [l.msg, l.status, l.route, l.requestId]), [
    ["request", 500, "/v1/boom", "rid-e"],
    ["handler failed", undefined, undefined, "rid-e"],
    ["request", 409, "/v1/conflict", "rid-e"],
    ["request", 404, "unmatched", "rid-e"],
  ]);
});

Deno.test("the fused stack keeps a security header the handler set, and edits immutable headers on a copy", async () => {
  const got = await both(async ({ handler }) => ({
    strict: await observe(await handler(new Request("http://svc/v1/strict"))),
    redirect: await observe(
      await handler(new Request("http://svc/v1/redirect", { headers: { "x-request-id": "rid-r" } })),
    ),
  }));
  assert.deepEqual(got.fused, got.layered);
  assert.equal(got.fused.strict.headers["content-security-policy"], "default-src 'self'");
  assert.equal(got.fused.redirect.status, 303);
  assert.equal(got.fused.redirect.headers.location, "http://svc/elsewhere");
  assert.equal(got.fused.redirect.headers["x-request-id"], "rid-r");
  assert.equal(got.fused.redirect.headers["referrer-policy"], "no-referrer");
});

Deno.test("the fused stack answers 504 problem at the deadline and aborts the handler's signal, as the layered stack does", async () => {
  const got = await both(async ({ handler, seen, lines }) => {
    const res = await handler(
      new Request("http://svc/v1/slow", {
        headers: { "x-request-id": "rid-s", "x-deadline-ms": String(Date.now() + 30) },
      }),
    );
    assert.equal(seen.ctx?.signal.aborted, true);
    assert.equal((seen.ctx?.signal.reason as DOMException).name, "TimeoutError");
    const observed = await observe(res);
    // The handler finishes late; its outcome is still counted and logged once.
    await within(
      (async () => {
        while (lines.length === 0) await new Promise((r) => setTimeout(r, 5));
      })(),
      2_000,
      "the late handler's access line",
    );
    return { res: observed, lines: masked(lines) };
  });
  assert.deepEqual(got.fused, got.layered);
  assert.equal(got.fused.res.status, 504);
  assert.equal(got.fused.res.headers["content-type"], "application/problem+json");
  assert.equal(got.fused.res.headers["x-request-id"], "rid-s");
  assert.match(got.fused.res.body, /deadline-exceeded/);
  assert.equal(Object.fromEntries(got.fused.lines[0]).status, 200);
});

Deno.test("the fused stack's /metrics text has the layered stack's names, labels and counts", async () => {
  const got = await both(async ({ handler, registry }) => {
    for (const [method, path] of [["GET", "/v1/orders/a"], ["GET", "/v1/orders/b"], ["HEAD", "/v1/orders/c"]]) {
      await (await handler(new Request(`http://svc${path}`, { method }))).body?.cancel();
    }
    await (await handler(new Request("http://svc/v1/boom"))).body?.cancel();
    await (await handler(new Request("http://svc/nowhere", { method: "PROPFIND" }))).body?.cancel();
    // Durations differ run to run: mask the values of _sum and of the buckets below +Inf, keep every count.
    return (await registry.metrics()).split("\n").map((l) =>
      l.replace(/^(http_request_duration_seconds_(sum|bucket\{le="[0-9.]+").*}) .*$/, "$1 <v>")
    );
  });
  assert.deepEqual(got.fused, got.layered);
  const text = got.fused.join("\n");
  assert.match(text, /^# TYPE http_requests_total counter$/m);
  assert.match(text, /^http_requests_total\{method="GET",route="\/v1\/orders\/:id",status="200",service="svc"\} 2$/m);
  assert.match(text, /^http_requests_total\{method="OTHER",route="unmatched",status="404",service="svc"\} 1$/m);
  assert.match(
    text,
    /^http_request_duration_seconds_bucket\{le="\+Inf",service="svc",method="HEAD",route="\/v1\/orders\/:id"\} 1$/m,
  );
});

Deno.test("RedCounters puts each duration in the bucket prom-client's Histogram would", async () => {
  const ours = new Registry();
  const red = new RedCounters(ours);
  const theirs = new Registry();
  const mw = redMetrics(theirs);
  const durations = [0, 0.001, 0.0011, 0.0025, 0.3, 1, 9.9, 10, 10.5, 60];
  for (const s of durations) red.record("GET", "/r", 200, s);
  // The layered middleware times the request itself: feed it the same durations through a fake clock.
  const realNow = performance.now;
  try {
    for (const s of durations) {
      let t = 0;
      performance.now = () => (t += s * 1000) - s * 1000;
      const h = mw(() => Promise.resolve(new Response(null)));
      await h(new Request("http://svc/r"));
    }
  } finally {
    performance.now = realNow;
  }
  const norm = (text: string) =>
    text.replace(/route="(unmatched|\/r)"/g, 'route="<r>"').replace(/_sum(.*) [0-9.e-]+$/gm, "_sum$1 <v>");
  assert.equal(norm(await ours.metrics()), norm(await theirs.metrics()));
});

Deno.test("the template access line is byte for byte the default logger's line", () => {
  const templated: string[] = [];
  const logged: string[] = [];
  const write = templateAccessLine('svc "quoted"', { level: "info", write: (line) => templated.push(line) })!;
  const logger = createLogger('svc "quoted"', { level: "info", write: (line) => logged.push(line) });
  const ctx = {
    requestId: "rid-1.2:3",
    signal: new AbortController().signal,
    traceId: "4bf92f3577b34da6a3ce929d0e0e4736",
  };
  const spanId = "00f067aa0ba902b7";
  const cases: [string, string, number, number, number | undefined, string | undefined][] = [
    ["GET", "/v1/orders/:id", 200, 0.12, 12, ctx.traceId],
    ["PROPFIND", 'odd "route"\n', 500, 1234.5, undefined, undefined],
  ];
  for (const [method, route, status, ms, bytes, traceId] of cases) {
    const span = traceId && spanId;
    const c = { ...ctx, traceId, traceparent: traceId && `00-${traceId}-${spanId}-01` };
    // Both within the same millisecond or retried: the timestamp is the only field that may differ.
    write(c.requestId, traceId, span, method, route, status, ms, bytes);
    runWithContext(c, () => loggerAccessLine(logger)(c.requestId, traceId, span, method, route, status, ms, bytes));
  }
  assert.match(templated[0], /"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b7"/);
  const noTs = (l: string) => l.replace(/^\{"ts":"[^"]+"/, '{"ts":"<ts>"');
  assert.deepEqual(templated.map(noTs), logged.map(noTs));
  for (const l of templated) assert.match(l, /^\{"ts":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"/);
  for (const l of templated) JSON.parse(l);
});
