import assert from "node:assert/strict";
import type { Metadata } from "@grpc/grpc-js";
import { type Context, runWithContext } from "../context/mod.ts";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { waitUntil, within } from "../testing/mod.ts";
import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import { GET, ORDER } from "./testdata/order.ts";
import { createGrpcClient } from "./client.ts";
import { DeadlineExceededError, GrpcError, InvalidArgumentError, UnavailableError } from "./errors.ts";
import { implement, serveGrpc, type UnaryHandlers } from "./server.ts";

type Orders = typeof OrdersServiceService;

const CREATE = { customerId: "c-1", items: [], paymentToken: "tok", idempotencyKey: "k-1" };

function serve(getOrder: UnaryHandlers<Orders>["getOrder"], port = 0) {
  return serveGrpc({
    port,
    services: [implement(OrdersServiceService, { getOrder, createOrder: getOrder as never })],
  });
}

/** A getOrder handler that answers UNAVAILABLE to the first `failures` calls and counts every call. */
function flaky(failures: number) {
  const handler = () => {
    handler.calls++;
    return handler.calls <= failures ? Promise.reject(new UnavailableError("warming up")) : Promise.resolve(ORDER);
  };
  handler.calls = 0;
  return handler;
}

Deno.test("an idempotent call is retried on UNAVAILABLE and succeeds within maxAttempts", async () => {
  const handler = flaky(2);
  await using server = await serve(handler);
  using client = createGrpcClient(OrdersServiceService, server.address, {
    idempotent: ["getOrder"],
    retry: { maxAttempts: 3, baseDelayMs: 5 },
  });
  assert.deepEqual(await client.getOrder(GET), ORDER);
  assert.equal(handler.calls, 3);
});

Deno.test("retries stop at maxAttempts and reject with the last UnavailableError", async () => {
  const handler = flaky(10);
  await using server = await serve(handler);
  using client = createGrpcClient(OrdersServiceService, server.address, {
    idempotent: ["getOrder"],
    retry: { maxAttempts: 4, baseDelayMs: 1 },
  });
  await assert.rejects(client.getOrder(GET), UnavailableError);
  assert.equal(handler.calls, 4);
});

Deno.test("a call not marked idempotent is attempted once, unless the call options mark it", async () => {
  const handler = flaky(1);
  await using server = await serve(handler);
  using client = createGrpcClient(OrdersServiceService, server.address, { retry: { baseDelayMs: 1 } });
  await assert.rejects(client.createOrder(CREATE), UnavailableError);
  assert.equal(handler.calls, 1);
  assert.deepEqual(await client.createOrder(CREATE, { idempotent: true }), ORDER);
});

Deno.test("only UNAVAILABLE and RESOURCE_EXHAUSTED are retried", async () => {
  let calls = 0;
  await using server = await serve(() => {
    calls++;
    return Promise.reject(new InvalidArgumentError("id is required"));
  });
  using client = createGrpcClient(OrdersServiceService, server.address, { idempotent: ["getOrder"] });
  await assert.rejects(client.getOrder(GET), InvalidArgumentError);
  assert.equal(calls, 1);
});

Deno.test("an idempotent call reaches a server that starts listening after the first attempt", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  using client = createGrpcClient(OrdersServiceService, `127.0.0.1:${port}`, {
    idempotent: ["getOrder"],
    retry: { maxAttempts: 20, baseDelayMs: 50, maxDelayMs: 100 },
    // grpc-js waits 1 s before reconnecting by default; a short backoff lets the retry see the new listener.
    channelOptions: { "grpc.initial_reconnect_backoff_ms": 20, "grpc.max_reconnect_backoff_ms": 50 },
  });
  const call = client.getOrder(GET, { timeoutMs: 5_000 });
  await new Promise((resolve) => setTimeout(resolve, 150));
  await using _server = await serve(() => Promise.resolve(ORDER), port);
  assert.deepEqual(await within(call, 6_000, "the retried call to reach the server started late"), ORDER);
});

Deno.test("retries never run past the deadline", async () => {
  const handler = flaky(100);
  await using server = await serve(handler);
  using client = createGrpcClient(OrdersServiceService, server.address, {
    idempotent: ["getOrder"],
    retry: { maxAttempts: 100, baseDelayMs: 40, maxDelayMs: 40 },
  });
  const started = Date.now();
  await assert.rejects(client.getOrder(GET, { timeoutMs: 150 }), GrpcError);
  assert.ok(Date.now() - started < 250, `gave up after ${Date.now() - started} ms`);
});

Deno.test("the call deadline is the earlier of timeoutMs and the context's remaining budget", async () => {
  const seen: Metadata[] = [];
  const deadlines: (number | undefined)[] = [];
  await using server = await serveGrpc({
    services: [
      implement(OrdersServiceService, {
        createOrder: () => Promise.resolve(ORDER),
        getOrder: (_req, ctx) => {
          deadlines.push(ctx.deadline);
          return Promise.resolve(ORDER);
        },
      }),
    ],
    authorize: (metadata) => {
      seen.push(metadata);
      return true;
    },
  });
  using client = createGrpcClient(OrdersServiceService, server.address, { timeoutMs: 60_000 });
  const ctx: Context = { requestId: "r-1", signal: new AbortController().signal, deadline: Date.now() + 300 };
  await runWithContext(ctx, () => client.getOrder(GET));
  await runWithContext(ctx, () => client.getOrder(GET, { timeoutMs: 100 }));

  assert.equal(seen[0].get("x-deadline-ms")[0], String(ctx.deadline));
  assert.ok(Number(seen[1].get("x-deadline-ms")[0]) < ctx.deadline!);
  assert.ok(deadlines[0]! <= ctx.deadline!);
  assert.ok(deadlines[1]! < ctx.deadline! - 100);
});

Deno.test("a call made after the context's deadline fails with DeadlineExceededError", async () => {
  await using server = await serve(() => Promise.resolve(ORDER));
  using client = createGrpcClient(OrdersServiceService, server.address);
  const ctx: Context = { requestId: "r-1", signal: AbortSignal.abort(), deadline: Date.now() - 1 };
  await assert.rejects(runWithContext(ctx, () => client.getOrder(GET)), (err) => err instanceof GrpcError);
  const late: Context = { requestId: "r-2", signal: new AbortController().signal, deadline: Date.now() - 1 };
  await assert.rejects(runWithContext(late, () => client.getOrder(GET)), DeadlineExceededError);
});

Deno.test("aborting the context's signal cancels the call in flight", async () => {
  const started = Promise.withResolvers<void>();
  await using server = await serve(async (_req, ctx) => {
    started.resolve();
    await within(
      new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true })),
      5_000,
      "the client's cancel to abort the handler's signal",
    );
    return ORDER;
  });
  using client = createGrpcClient(OrdersServiceService, server.address);
  const controller = new AbortController();
  const ctx: Context = { requestId: "r-1", signal: controller.signal };
  const call = runWithContext(ctx, () => client.getOrder(GET));
  await within(started.promise, 5_000, "the call to reach the handler");
  controller.abort(new DOMException("request budget spent", "TimeoutError"));
  await assert.rejects(within(call, 2_000, "the call to reject once its context aborted"), DeadlineExceededError);
});

Deno.test("the token provider's token is sent as a bearer authorization header on every call", async () => {
  const auth: string[] = [];
  await using server = await serveGrpc({
    services: [
      implement(OrdersServiceService, {
        createOrder: () => Promise.resolve(ORDER),
        getOrder: () => Promise.resolve(ORDER),
      }),
    ],
    authorize: (metadata) => {
      auth.push(String(metadata.get("authorization")[0]));
      return true;
    },
  });
  let n = 0;
  using client = createGrpcClient(OrdersServiceService, server.address, { token: () => Promise.resolve(`t${++n}`) });
  await client.getOrder(GET);
  await client.createOrder(CREATE);
  assert.deepEqual(auth, ["Bearer t1", "Bearer t2"]);
});

Deno.test("close() on a client is idempotent and later calls fail with UnavailableError", async () => {
  await using server = await serve(() => Promise.resolve(ORDER));
  const client = createGrpcClient(OrdersServiceService, server.address);
  await client.getOrder(GET);
  client.close();
  client.close();
  await assert.rejects(client.getOrder(GET), UnavailableError);
});

Deno.test("a call to a port nobody listens on fails with UnavailableError and the client still closes", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const client = createGrpcClient(OrdersServiceService, `127.0.0.1:${port}`, {
    channelOptions: { "grpc.initial_reconnect_backoff_ms": 10, "grpc.max_reconnect_backoff_ms": 10 },
  });
  await assert.rejects(client.getOrder(GET, { timeoutMs: 1_000 }), UnavailableError);
  client.close();
  // grpc-js 1.14 leaves a failed subchannel's reconnect backoff timer running after its channel closes
  // (Subchannel.unref() stops CONNECTING/READY, not TRANSIENT_FAILURE); it fires once, here after 10 ms.
  await new Promise((resolve) => setTimeout(resolve, 50));
});

// A Deno 2.9 server that receives a GOAWAY can abort in nghttp2 (https://github.com/denoland/deno/issues/36788), so a
// stopping caller must not send one: close() ends its connections plainly. A bare node:http2 server sees the frames.
Deno.test("close() ends the client's connections without sending its server an HTTP/2 GOAWAY", async () => {
  const seen = { sessions: 0, goaways: 0, closed: 0 };
  const server = http2.createServer();
  server.on("session", (session) => {
    seen.sessions++;
    session.on("goaway", () => seen.goaways++);
    session.on("close", () => seen.closed++);
  });
  server.on("stream", (stream: http2.ServerHttp2Stream) => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "5", "grpc-message": "no orders here" }));
    stream.end();
  });
  await within(new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve)), 5_000, "the server to listen");
  try {
    const client = createGrpcClient(OrdersServiceService, `127.0.0.1:${(server.address() as AddressInfo).port}`);
    await assert.rejects(client.getOrder(GET), GrpcError);
    client.close();
    await waitUntil(() => seen.closed === 1, 5_000, "the client's connection to close");
    assert.deepEqual(seen, { sessions: 1, goaways: 0, closed: 1 });
  } finally {
    await within(new Promise((resolve) => server.close(resolve)), 5_000, "the server to close");
  }
});
