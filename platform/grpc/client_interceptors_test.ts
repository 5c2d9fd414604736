import assert from "node:assert/strict";
import { Metadata } from "@grpc/grpc-js";
import { type Context, runWithContext } from "../context/mod.ts";
import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import { GET, ORDER } from "./testdata/order.ts";
import { createGrpcClient } from "./client.ts";
import { bearerToken, callContext, endUserToken, retryCalls } from "./client_interceptors.ts";
import { UnavailableError } from "./errors.ts";
import type { ClientInterceptor, OutgoingCall, ServerInterceptor } from "./interceptor.ts";
import { implement, serveGrpc, type UnaryHandlers } from "./server.ts";
import { CircuitBreaker, CircuitOpenError, resiliencePolicy, RetryBudget } from "../resilience/mod.ts";
import { waitUntil } from "../testing/mod.ts";

/** A server whose getOrder is `getOrder`, recording the metadata of every call it receives. */
async function serve(
  getOrder: UnaryHandlers<typeof OrdersServiceService>["getOrder"] = () => Promise.resolve(ORDER),
  port = 0,
) {
  const received: Metadata[] = [];
  const record: ServerInterceptor = (next) => (call) => {
    received.push(call.metadata);
    return next(call);
  };
  const server = await serveGrpc({
    services: [implement(OrdersServiceService, { getOrder, createOrder: getOrder as never })],
    interceptors: [record],
    port,
  });
  return Object.assign(server, { received });
}

Deno.test("a custom client interceptor sees the context, deadline and token, and the metadata it adds arrives", async () => {
  await using server = await serve();
  const seen: OutgoingCall[] = [];
  const tenant: ClientInterceptor = (next) => (call) => {
    seen.push(call);
    const metadata = call.metadata.clone();
    metadata.set("x-tenant", "acme");
    return next({ ...call, metadata });
  };
  using client = createGrpcClient(OrdersServiceService, server.address, {
    token: () => Promise.resolve("svc"),
    interceptors: [tenant],
  });
  const ctx: Context = { requestId: "req-9", signal: new AbortController().signal, deadline: Date.now() + 2_000 };
  await runWithContext(ctx, () => client.getOrder(GET, { metadata: { "x-extra": "1" } }));

  assert.equal(seen.length, 1);
  assert.equal(seen[0].method, "/trellis.orders.v1.OrdersService/GetOrder");
  assert.equal(seen[0].name, "getOrder");
  assert.equal(seen[0].deadline, ctx.deadline);
  assert.equal(seen[0].metadata.get("x-request-id")[0], "req-9");
  assert.equal(seen[0].metadata.get("authorization")[0], "Bearer svc");
  assert.equal(seen[0].metadata.get("x-tenant").length, 0, "the interceptor's copy, not the caller's, is changed");
  const [sent] = server.received;
  assert.equal(sent.get("x-tenant")[0], "acme");
  assert.equal(sent.get("x-extra")[0], "1");
  assert.equal(sent.get("x-request-id")[0], "req-9");
  assert.equal(sent.get("authorization")[0], "Bearer svc");
});

Deno.test("custom interceptors see a retried call once, with the outcome of its last attempt", async () => {
  let calls = 0;
  await using server = await serve(() =>
    ++calls < 3 ? Promise.reject(new UnavailableError("warming up")) : Promise.resolve(ORDER)
  );
  const outcomes: string[] = [];
  const observe: ClientInterceptor = (next) => (call) =>
    next(call).then((res) => {
      outcomes.push("ok");
      return res;
    });
  using client = createGrpcClient(OrdersServiceService, server.address, {
    idempotent: ["getOrder"],
    retry: { baseDelayMs: 1 },
    interceptors: [observe],
  });
  assert.deepEqual(await client.getOrder(GET), ORDER);
  assert.equal(calls, 3);
  assert.deepEqual(outcomes, ["ok"]);
});

Deno.test("endUserToken() forwards the authenticated user's token and sends none without one", async () => {
  await using server = await serve();
  using client = createGrpcClient(OrdersServiceService, server.address, { interceptors: [endUserToken()] });
  const ctx: Context = {
    requestId: "r-1",
    signal: new AbortController().signal,
    principal: { sub: "u-1", scopes: [], token: "user-jwt" },
  };
  await runWithContext(ctx, () => client.getOrder(GET));
  await client.getOrder(GET);
  assert.equal(server.received[0].get("x-end-user-token")[0], "user-jwt");
  assert.equal(server.received[1].get("x-end-user-token").length, 0);
});

Deno.test("the client interceptors compose by hand into the same chain createGrpcClient builds", async () => {
  const sent: OutgoingCall[] = [];
  let attempts = 0;
  const send = (call: OutgoingCall) => {
    sent.push(call);
    return ++attempts < 2 ? Promise.reject(new UnavailableError("busy")) : Promise.resolve("done");
  };
  const chained = callContext({ timeoutMs: 1_000 })(
    bearerToken(() => Promise.resolve("t"))(retryCalls({ idempotent: ["get"], baseDelayMs: 1 })(send)),
  );
  const before = Date.now();
  const call = {
    method: "/m/Get",
    name: "get",
    request: {},
    metadata: new Metadata(),
    options: {},
    deadline: Infinity,
  };
  assert.equal(await chained(call), "done");
  assert.equal(sent.length, 2);
  assert.equal(sent[1], sent[0], "a retry sends the same call again");
  assert.ok(sent[0].deadline >= before + 1_000 && sent[0].deadline <= Date.now() + 1_000);
  assert.equal(sent[0].metadata.get("authorization")[0], "Bearer t");
  assert.equal(sent[0].metadata.get("x-deadline-ms")[0], String(sent[0].deadline));
});

Deno.test("retryCalls() refuses a maxAttempts below 1", () => {
  assert.throws(() => retryCalls({ maxAttempts: 0 }), RangeError);
});

Deno.test("a circuit breaker opens when its gRPC server stops and closes once the server is back on the same port", async () => {
  let server = await serve();
  const { port } = server;
  const changes: string[] = [];
  const breaker = new CircuitBreaker("orders", {
    minimumCalls: 3,
    openMs: 100,
    halfOpenCalls: 1,
    onStateChange: (c) => changes.push(c.to),
  });
  using client = createGrpcClient(OrdersServiceService, `127.0.0.1:${port}`, {
    idempotent: ["getOrder"],
    timeoutMs: 1_000,
    policy: resiliencePolicy({ retry: { maxAttempts: 1 }, breaker }),
  });
  try {
    assert.deepEqual(await client.getOrder(GET), ORDER);
    await server.close(0);
    // With the success before them, two failures make 2 of 3 calls: over the 50 % threshold.
    for (let i = 0; i < 2; i++) await assert.rejects(client.getOrder(GET), UnavailableError);
    assert.equal(breaker.state, "open");
    await assert.rejects(client.getOrder(GET), CircuitOpenError);

    server = await serve(undefined, port);
    const before = server.received.length;
    // Probes may still fail while grpc-js waits out its reconnect backoff; each failure reopens for openMs.
    await waitUntil(
      async () => (await client.getOrder(GET).then(() => true, () => false)) && breaker.state === "closed",
      8_000,
      "the circuit to close once the server is back",
      20,
    );
    assert.ok(server.received.length > before);
    assert.deepEqual([changes[0], changes[1], changes.at(-1)], ["open", "half-open", "closed"]);
  } finally {
    await server.close(0);
  }
});

Deno.test("retryCalls() with a retry budget retries a failing server's calls only as far as the budget allows", async () => {
  let calls = 0;
  await using server = await serve(() => {
    calls++;
    return Promise.reject(new UnavailableError("overloaded"));
  });
  const budget = new RetryBudget({ ratio: 0.1, minPerSec: 0 });
  using client = createGrpcClient(OrdersServiceService, server.address, {
    idempotent: ["getOrder"],
    policy: resiliencePolicy({ retry: { maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 2 }, budget }),
  });
  for (let i = 0; i < 20; i++) await assert.rejects(client.getOrder(GET), UnavailableError);
  assert.equal(calls, 22, "20 calls earn 2 retries, where maxAttempts alone would allow 60");
});
