import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { createLogger } from "../log/mod.ts";
import { Service } from "../service/mod.ts";
import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import { ORDER } from "./testdata/order.ts";
import { createGrpcClient } from "./client.ts";
import { type GrpcError, status } from "./errors.ts";
import { serverMetrics } from "./metrics.ts";
import { serveGrpcWith } from "./serve_with.ts";
import { implement } from "./server.ts";

Deno.test("serveGrpcWith() serves from start to stop of a Service, logging failures with the service's logger", async () => {
  const lines: Record<string, unknown>[] = [];
  const svc = new Service({
    name: "orders",
    logger: createLogger("orders", { level: "error", write: (line) => lines.push(JSON.parse(line)) }),
  });
  const server = serveGrpcWith(svc, {
    services: [
      implement(OrdersServiceService, {
        getOrder: () => Promise.resolve(ORDER),
        createOrder: () => Promise.reject(new Error("a bug")),
      }),
    ],
    interceptors: [serverMetrics(svc.registry)],
  });
  assert.equal(server(), undefined);
  await svc.start();
  let port: number;
  try {
    const { address } = server()!;
    port = server()!.port;
    using client = createGrpcClient(OrdersServiceService, address);
    assert.deepEqual(await client.getOrder({ id: "o-1", customerId: "" }), ORDER);
    await assert.rejects(
      client.createOrder({ customerId: "c", items: [], paymentToken: "", idempotencyKey: "" }),
      (err: GrpcError) => err.code === status.INTERNAL,
    );
    assert.equal(lines.filter((l) => l.msg === "grpc handler failed").length, 1);
    assert.match(await svc.registry.metrics(), /grpc_server_handled_total\{[^}]*code="OK"[^}]*\} 1/);
  } finally {
    await svc.stop();
  }
  assert.equal(server(), undefined);
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }), Deno.errors.ConnectionRefused);
});

Deno.test("serveGrpcWith() servers on one registry share its metrics", async () => {
  const svc = new Service({ name: "two", logger: createLogger("two", { level: "error", write: () => {} }) });
  const registry = new Registry();
  const services = [implement(OrdersServiceService, {
    getOrder: () => Promise.resolve(ORDER),
    createOrder: () => Promise.resolve(ORDER),
  })];
  const first = serveGrpcWith(svc, { services, interceptors: [serverMetrics(registry)] });
  const second = serveGrpcWith(svc, { services, interceptors: [serverMetrics(registry)] });
  await svc.start();
  try {
    for (const server of [first, second]) {
      using client = createGrpcClient(OrdersServiceService, server()!.address);
      await client.getOrder({ id: "o-1", customerId: "" });
    }
    assert.match(await registry.metrics(), /grpc_server_handled_total\{method="[^"]+GetOrder",code="OK"\} 2/);
  } finally {
    await svc.stop();
  }
});
