import assert from "node:assert/strict";
import { type Context, currentContext, runWithContext } from "../context/mod.ts";
import { createLogger } from "../log/mod.ts";
import { within } from "../testing/mod.ts";
import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import { order, ordersServerAndClient } from "./testdata/order.ts";
import { createGrpcClient } from "./client.ts";
import { GrpcError, NotFoundError, PermissionDeniedError, status, UnauthenticatedError } from "./errors.ts";
import { implement, serveGrpc, type UnaryHandlers } from "./server.ts";

type Orders = typeof OrdersServiceService;

const setup = ordersServerAndClient;

/** Resolves with the signal's reason once it aborts. */
function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(signal.reason), { once: true }));
}

Deno.test("serveGrpc() answers a unary call with what the async handler returns", async () => {
  await using env = await setup({
    createOrder: (req) => Promise.resolve(order({ customerId: req.customerId, items: req.items, totalCents: 1250 })),
  });
  const created = await env.client.createOrder({
    customerId: "c-7",
    items: [{ sku: "sku-1", quantity: 2 }],
    paymentToken: "tok",
    idempotencyKey: "k-1",
  });
  assert.deepEqual(created, order({ customerId: "c-7", items: [{ sku: "sku-1", quantity: 2 }], totalCents: 1250 }));
});

Deno.test("serveGrpc() runs the handler in a Context with the caller's request id, traceparent and deadline", async () => {
  let seen: Context | undefined;
  await using env = await setup({
    getOrder: (_req, ctx) => {
      seen = currentContext();
      assert.equal(seen, ctx);
      return Promise.resolve(order());
    },
  });
  const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const deadline = Date.now() + 2_000;
  const caller = { requestId: "req-42", traceparent, deadline, signal: new AbortController().signal };
  await runWithContext(caller, () => env.client.getOrder({ id: "o-1", customerId: "" }));

  assert.equal(seen?.requestId, "req-42");
  assert.equal(seen?.traceparent, traceparent);
  assert.ok(seen?.deadline !== undefined && seen.deadline <= deadline && seen.deadline > deadline - 1_000);
  assert.equal(seen?.signal.aborted, false);
});

Deno.test("serveGrpc() takes the gRPC deadline when it is earlier than the x-deadline-ms the caller sent", async () => {
  let deadline: number | undefined;
  await using env = await setup({
    getOrder: (_req, ctx) => {
      deadline = ctx.deadline;
      return Promise.resolve(order());
    },
  });
  const before = Date.now();
  await env.client.getOrder({ id: "o-1", customerId: "" }, {
    timeoutMs: 1_000,
    metadata: { "x-deadline-ms": String(before + 60_000) },
  });
  assert.ok(deadline !== undefined && deadline <= Date.now() + 1_000, `deadline ${deadline} is the gRPC one`);
});

Deno.test("a client deadline shorter than the handler fails with DEADLINE_EXCEEDED and aborts the handler's signal", async () => {
  let handlerAbort: Promise<unknown> | undefined;
  await using env = await setup({
    getOrder: async (_req, ctx) => {
      handlerAbort = aborted(ctx.signal);
      await within(handlerAbort, 5_000, "the call's deadline to abort the handler's signal");
      throw ctx.signal.reason;
    },
  });
  await assert.rejects(
    env.client.getOrder({ id: "o-1", customerId: "" }, { timeoutMs: 100 }),
    (err: GrpcError) => err.code === status.DEADLINE_EXCEEDED,
  );
  assert.ok(handlerAbort, "the handler ran");
  assert.ok(await within(handlerAbort, 1_000, "the handler's signal to abort") instanceof DOMException);
});

Deno.test("aborting the client's signal cancels the call and aborts the handler's signal", async () => {
  let handlerAbort: Promise<unknown> | undefined;
  const started = Promise.withResolvers<void>();
  await using env = await setup({
    getOrder: async (_req, ctx) => {
      handlerAbort = aborted(ctx.signal);
      started.resolve();
      await within(handlerAbort, 5_000, "the client's cancel to abort the handler's signal");
      throw ctx.signal.reason;
    },
  });
  const controller = new AbortController();
  const call = env.client.getOrder({ id: "o-1", customerId: "" }, { signal: controller.signal });
  await within(started.promise, 5_000, "the call to reach the handler");
  controller.abort();
  await assert.rejects(
    within(call, 2_000, "the cancelled call to reject"),
    (err: GrpcError) => err.code === status.CANCELLED,
  );
  assert.equal(
    (await within(handlerAbort!, 2_000, "the client's cancel to abort the handler's signal") as Error).name,
    "AbortError",
  );
});

Deno.test("a thrown GrpcError keeps its code and message and reaches the client as its typed subclass", async () => {
  await using env = await setup({
    getOrder: (req) => Promise.reject(new NotFoundError(`order ${req.id} not found`)),
  });
  await assert.rejects(env.client.getOrder({ id: "o-9", customerId: "" }), (err) => {
    assert.ok(err instanceof NotFoundError);
    assert.equal(err.code, status.NOT_FOUND);
    assert.equal(err.message, "order o-9 not found");
    return true;
  });
});

Deno.test("a plain Error becomes INTERNAL with a generic message and is logged with its stack", async () => {
  const lines: Record<string, unknown>[] = [];
  await using env = await setup(
    { getOrder: () => Promise.reject(new Error("password=hunter2 leaked")) },
    { logger: createLogger("orders", { write: (line) => lines.push(JSON.parse(line)) }) },
  );
  await assert.rejects(env.client.getOrder({ id: "o-1", customerId: "" }), (err: GrpcError) => {
    assert.equal(err.code, status.INTERNAL);
    assert.equal(err.message, "internal error");
    return true;
  });
  assert.equal(lines.length, 1);
  assert.equal(lines[0].method, "/trellis.orders.v1.OrdersService/GetOrder");
  assert.match(String((lines[0].error as { stack: string }).stack), /password=hunter2 leaked/);
});

Deno.test("authorize() answers UNAUTHENTICATED without a token and puts the principal in the handler's Context", async () => {
  await using env = await setup(
    { getOrder: (_req, ctx) => Promise.resolve(order({ customerId: ctx.principal?.sub ?? "anonymous" })) },
    {
      authorize: (metadata) => {
        const [auth] = metadata.get("authorization");
        return auth === "Bearer svc-token" ? { sub: "gateway", scopes: ["orders:read"] } : undefined;
      },
    },
  );
  await assert.rejects(env.client.getOrder({ id: "o-1", customerId: "" }), UnauthenticatedError);

  using authed = createGrpcClient(OrdersServiceService, env.server.address, {
    token: () => Promise.resolve("svc-token"),
  });
  assert.equal((await authed.getOrder({ id: "o-1", customerId: "" })).customerId, "gateway");
});

Deno.test("authorize() throwing answers PERMISSION_DENIED unless it throws a GrpcError", async () => {
  await using env = await setup(
    { getOrder: () => Promise.resolve(order()) },
    {
      authorize: (_metadata, method) => {
        if (method.endsWith("/GetOrder")) throw new Error("scope orders:read missing");
        throw new GrpcError(status.RESOURCE_EXHAUSTED, "quota");
      },
    },
  );
  await assert.rejects(env.client.getOrder({ id: "o-1", customerId: "" }), PermissionDeniedError);
  await assert.rejects(
    env.client.createOrder({ customerId: "c", items: [], paymentToken: "", idempotencyKey: "" }),
    (err: GrpcError) => err.code === status.RESOURCE_EXHAUSTED && err.message === "quota",
  );
});

Deno.test("close() is idempotent and cancels calls still running after the grace period", async () => {
  let handlerAbort: Promise<unknown> | undefined;
  const started = Promise.withResolvers<void>();
  const server = await serveGrpc({
    services: [
      implement(OrdersServiceService, {
        createOrder: () => Promise.resolve(order()),
        getOrder: async (_req, ctx) => {
          handlerAbort = aborted(ctx.signal);
          started.resolve();
          await within(handlerAbort, 5_000, "close() to abort the handler's signal after its grace period");
          return order();
        },
      }),
    ],
  });
  using client = createGrpcClient(OrdersServiceService, server.address);
  const cancelled = assert.rejects(
    client.getOrder({ id: "o-1", customerId: "" }),
    (err: GrpcError) => err.code === status.CANCELLED,
  );
  await within(started.promise, 5_000, "the call to reach the handler");

  const first = server.close(50);
  assert.equal(server.close(50), first);
  await within(first, 5_000, "close(50) to finish once its grace period passed");
  await within(cancelled, 2_000, "the client to get CANCELLED for the call close() cut off");
  await within(handlerAbort!, 1_000, "close() to abort the handler's signal");
  await server.close();
});

Deno.test("implement() rejects a definition method without a handler", () => {
  assert.throws(
    () =>
      implement(OrdersServiceService, { getOrder: () => Promise.resolve(order()) } as unknown as UnaryHandlers<Orders>),
    TypeError,
  );
});
