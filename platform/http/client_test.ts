import assert from "node:assert/strict";
import { type Context, runWithContext } from "../context/mod.ts";
import {
  createHttpClient,
  HttpStatusError,
  retryAfterMs,
  TimeoutError,
  UnavailableError,
  UpstreamError,
} from "./client.ts";
import { within } from "../testing/mod.ts";
import { CircuitBreaker, CircuitOpenError, resiliencePolicy, RetryBudget } from "../resilience/mod.ts";

/** A real server on a free loopback port that counts the requests it gets. */
function serve(handler: (req: Request, n: number) => Response | Promise<Response>) {
  let n = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => handler(req, ++n));
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    get requests() {
      return n;
    },
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function context(budgetMs: number, extra: Partial<Context> = {}): Context {
  return { requestId: "req-1", signal: new AbortController().signal, deadline: Date.now() + budgetMs, ...extra };
}

function problem(status: number, headers: Record<string, string> = {}): Response {
  return Response.json({ type: "https://trellis.dev/problems/x", title: "X", status }, {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

async function rejects<E>(p: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof (type as unknown as typeof Error), `expected ${type.name}, got ${err}`);
    return err as E;
  }
  assert.fail(`expected ${type.name}, but the call succeeded`);
}

Deno.test("request() propagates request id, traceparent, the call's deadline and the service token", async () => {
  let seen: Headers | undefined;
  await using server = serve((req) => {
    seen = req.headers;
    return new Response("ok");
  });
  const client = createHttpClient({ baseUrl: server.url, token: () => Promise.resolve("svc-token") });
  const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const ctx = context(2_000, { traceparent });
  const res = await runWithContext(ctx, () => client.request("GET", "/v1/things"));
  assert.equal(await res.text(), "ok");
  assert.equal(seen?.get("x-request-id"), "req-1");
  assert.equal(seen?.get("traceparent"), traceparent);
  assert.equal(seen?.get("authorization"), "Bearer svc-token");
  const deadline = Number(seen?.get("x-deadline-ms"));
  assert.ok(deadline <= ctx.deadline! && deadline > Date.now(), `deadline ${deadline} within the context's`);
});

Deno.test("request() sends its own timeoutMs as the deadline when it is shorter than the context's budget", async () => {
  let deadline = 0;
  await using server = serve((req) => {
    deadline = Number(req.headers.get("x-deadline-ms"));
    return new Response(null, { status: 204 });
  });
  const client = createHttpClient({ baseUrl: server.url, timeoutMs: 300 });
  const before = Date.now();
  await runWithContext(context(60_000), () => client.request("DELETE", "/x"));
  assert.ok(deadline >= before + 300 && deadline <= Date.now() + 300, `deadline ${deadline - before} ms ahead`);
});

Deno.test("a passing context deadline aborts the in-flight fetch and rejects with TimeoutError", async () => {
  const { promise: serverSawAbort, resolve } = Promise.withResolvers<void>();
  await using server = serve((req) =>
    new Promise<Response>((done) => {
      req.signal.addEventListener("abort", () => {
        resolve();
        done(new Response("too late"));
      }, { once: true });
    })
  );
  const client = createHttpClient({ baseUrl: server.url, timeoutMs: 10_000 });
  const started = Date.now();
  const err = await rejects(runWithContext(context(150), () => client.request("GET", "/slow")), TimeoutError);
  assert.ok(Date.now() - started < 1_000);
  assert.equal(err.attempts, 1, "a spent budget is not retried");
  await within(serverSawAbort, 2_000, "the server to see the request aborted");
  assert.equal(server.requests, 1);
});

Deno.test("request() retries an idempotent call on 503 and resolves with the success", async () => {
  await using server = serve((_req, n) => n < 3 ? problem(503) : new Response("finally"));
  const client = createHttpClient({ baseUrl: server.url, retry: { baseDelayMs: 5 } });
  const res = await client.request("GET", "/flaky");
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "finally");
  assert.equal(server.requests, 3);
});

Deno.test("request() does not retry a POST unless it is marked idempotent", async () => {
  await using server = serve(() => problem(503));
  const client = createHttpClient({ baseUrl: server.url, retry: { baseDelayMs: 5 } });
  const once = await rejects(client.request("POST", "/orders", { body: "{}" }), UnavailableError);
  assert.equal(once.attempts, 1);
  assert.equal(once.status, 503);
  assert.equal(server.requests, 1);
  const thrice = await rejects(client.request("POST", "/orders", { body: "{}", idempotent: true }), UnavailableError);
  assert.equal(thrice.attempts, 3);
  assert.equal(server.requests, 4);
});

Deno.test("request() waits the Retry-After of a 429 before the retry", async () => {
  const at: number[] = [];
  await using server = serve((_req, n) => {
    at.push(Date.now());
    return n === 1 ? problem(429, { "retry-after": "1" }) : new Response("ok");
  });
  const client = createHttpClient({ baseUrl: server.url, timeoutMs: 3_000 });
  const res = await client.request("GET", "/limited");
  await res.body?.cancel();
  assert.equal(res.status, 200);
  assert.equal(at.length, 2);
  assert.ok(at[1] - at[0] >= 900, `retried after ${at[1] - at[0]} ms`);
});

Deno.test("request() hands a 429 back at once when its Retry-After is beyond the budget", async () => {
  await using server = serve(() => problem(429, { "retry-after": "120" }));
  const client = createHttpClient({ baseUrl: server.url, timeoutMs: 500 });
  const started = Date.now();
  const res = await client.request("GET", "/limited");
  assert.equal(res.status, 429);
  assert.equal((await res.json()).status, 429);
  assert.ok(Date.now() - started < 400);
  assert.equal(server.requests, 1);
});

Deno.test("request() rejects with UnavailableError after every attempt when the connection is refused", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  let calls = 0;
  const client = createHttpClient({
    baseUrl: `http://127.0.0.1:${port}`,
    retry: { baseDelayMs: 5 },
    fetch: (input, init) => {
      calls++;
      return fetch(input, init);
    },
  });
  const err = await rejects(client.request("GET", "/"), UnavailableError);
  assert.equal(err.attempts, 3);
  assert.equal(err.status, undefined);
  assert.equal(calls, 3);
});

Deno.test("request() rejects with TimeoutError and sends nothing when the budget is already spent", async () => {
  let calls = 0;
  const client = createHttpClient({
    baseUrl: "http://127.0.0.1:1",
    fetch: () => {
      calls++;
      return Promise.resolve(new Response("unexpected"));
    },
  });
  const err = await rejects(runWithContext(context(-1), () => client.request("GET", "/")), TimeoutError);
  assert.equal(err.attempts, 0);
  assert.equal(calls, 0);
});

Deno.test("request() stops retrying when the next backoff would pass the deadline", async () => {
  await using server = serve(() => problem(503));
  const client = createHttpClient({ baseUrl: server.url, timeoutMs: 100, retry: { maxAttempts: 10 } });
  await runWithContext(context(10_000), async () => {
    const started = Date.now();
    const err = await rejects(client.request("GET", "/"), UnavailableError);
    assert.ok(Date.now() - started < 400);
    assert.ok(err.attempts < 10);
  });
});

Deno.test("request() rejects with UpstreamError carrying the status and problem for a 500, without retrying", async () => {
  await using server = serve(() => problem(500));
  const client = createHttpClient({ baseUrl: server.url });
  const err = await rejects(client.request("GET", "/"), UpstreamError);
  assert.equal(err.status, 500);
  assert.equal(err.problem?.status, 500);
  assert.equal(server.requests, 1);
});

Deno.test("request() resolves with a 4xx as is, and requestJson() turns it into HttpStatusError", async () => {
  await using server = serve(() => problem(404));
  const client = createHttpClient({ baseUrl: server.url });
  const res = await client.request("GET", "/missing");
  assert.equal(res.status, 404);
  assert.equal((await res.json()).status, 404);
  const err = await rejects(client.requestJson("GET", "/missing"), HttpStatusError);
  assert.equal(err.status, 404);
  assert.equal(err.problem?.title, "X");
});

Deno.test("requestJson() sends and decodes JSON", async () => {
  await using server = serve(async (req) => {
    assert.equal(req.headers.get("content-type"), "application/json");
    return Response.json({ echoed: await req.json() }, { status: 201 });
  });
  const client = createHttpClient({ baseUrl: `${server.url}/api/` });
  const out = await client.requestJson<{ echoed: unknown }>("POST", "echo", { json: { a: 1 } });
  assert.deepEqual(out, { echoed: { a: 1 } });
});

Deno.test("request() rejects with the caller's abort reason when the caller cancels", async () => {
  const { promise: arrived, resolve } = Promise.withResolvers<void>();
  await using server = serve((req) =>
    new Promise<Response>((done) => {
      resolve();
      req.signal.addEventListener("abort", () => done(new Response("gone")), { once: true });
    })
  );
  const client = createHttpClient({ baseUrl: server.url });
  const caller = new AbortController();
  const call = client.request("GET", "/", { signal: caller.signal });
  await within(arrived, 5_000, "the request to reach the server");
  const reason = new Error("user went away");
  caller.abort(reason);
  await assert.rejects(within(call, 2_000, "the aborted request to reject"), (err) => err === reason);
});

Deno.test("retryAfterMs() reads delay-seconds and HTTP dates", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(retryAfterMs("2", now), 2_000);
  assert.equal(retryAfterMs("Thu, 01 Jan 2026 00:00:03 GMT", now), 3_000);
  assert.equal(retryAfterMs("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);
  assert.equal(retryAfterMs("soon", now), undefined);
  assert.equal(retryAfterMs(null, now), undefined);
});

Deno.test("createHttpClient() rejects a bad baseUrl, maxAttempts or timeoutMs", () => {
  assert.throws(() => createHttpClient({ baseUrl: "not a url" }), TypeError);
  assert.throws(() => createHttpClient({ baseUrl: "http://x", retry: { maxAttempts: 0 } }), RangeError);
  assert.throws(() => createHttpClient({ baseUrl: "http://x", timeoutMs: 0 }), RangeError);
});

Deno.test("a retry budget caps the load a server answering 503 gets from a client's retries", async () => {
  await using server = serve(() => problem(503));
  /** Requests the server got per client call, over 50 calls. */
  const load = async (budget?: RetryBudget) => {
    const before = server.requests;
    const client = createHttpClient({
      baseUrl: server.url,
      policy: resiliencePolicy({ retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 2 }, budget }),
    });
    for (let i = 0; i < 50; i++) await rejects(client.request("GET", "/"), UnavailableError);
    return (server.requests - before) / 50;
  };
  assert.equal(await load(), 4, "without a budget every call makes maxAttempts requests");
  assert.equal(await load(new RetryBudget({ ratio: 0.1, minPerSec: 0 })), 1.1, "with it, 10 % more than the calls");
});

Deno.test("an open circuit makes request() reject with UnavailableError caused by CircuitOpenError, sending nothing", async () => {
  await using server = serve(() => problem(502));
  const breaker = new CircuitBreaker("notifications", { minimumCalls: 2, openMs: 60_000 });
  const client = createHttpClient({
    baseUrl: server.url,
    policy: resiliencePolicy({ retry: { maxAttempts: 1 }, breaker }),
  });
  for (let i = 0; i < 2; i++) await rejects(client.request("GET", "/"), UpstreamError);
  const err = await rejects(client.request("GET", "/"), UnavailableError);
  assert.ok(err.cause instanceof CircuitOpenError);
  assert.equal(err.attempts, 0);
  assert.equal(server.requests, 2);
});

Deno.test("a 404 or a 429 does not count against the circuit breaker", async () => {
  await using server = serve((_req, n) => n % 2 ? new Response(null, { status: 404 }) : problem(429));
  const breaker = new CircuitBreaker("notifications", { minimumCalls: 2 });
  const client = createHttpClient({
    baseUrl: server.url,
    policy: resiliencePolicy({ retry: { maxAttempts: 1 }, breaker }),
  });
  for (let i = 0; i < 6; i++) await (await client.request("GET", "/")).body?.cancel();
  assert.equal(breaker.state, "closed");
});

Deno.test("createHttpClient() refuses retry beside policy", () => {
  assert.throws(
    () => createHttpClient({ baseUrl: "http://x", retry: { maxAttempts: 2 }, policy: resiliencePolicy() }),
    /Cannot use retry beside policy/,
  );
});
