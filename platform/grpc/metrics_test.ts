import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import { ORDER, ordersServerAndClient } from "./testdata/order.ts";
import { authorization } from "./authorization.ts";
import { createGrpcClient } from "./client.ts";
import { NotFoundError, UnauthenticatedError } from "./errors.ts";
import { clientMetrics, serverMetrics } from "./metrics.ts";

const GET_ORDER = "/trellis.orders.v1.OrdersService/GetOrder";
const CREATE_ORDER = "/trellis.orders.v1.OrdersService/CreateOrder";
const CREATE = { customerId: "c-1", items: [], paymentToken: "", idempotencyKey: "" };

/** The value of the series `series` (a counter, or a histogram's `_count`) with exactly these labels, or undefined. */
async function valueOf(
  registry: Registry,
  series: string,
  labels: Record<string, string>,
): Promise<number | undefined> {
  const metric = registry.getSingleMetric(series.replace(/_count$/, ""));
  assert.ok(metric, `${series} is registered`);
  const { values } = await metric.get();
  const found = values.find((v) =>
    ((v as { metricName?: string }).metricName ?? series) === series &&
    Object.keys(v.labels).length === Object.keys(labels).length &&
    Object.entries(labels).every(([k, want]) => v.labels[k] === want)
  );
  return found?.value;
}

function setup(registry: Registry) {
  return ordersServerAndClient(
    {
      getOrder: (req) => req.id === "o-1" ? Promise.resolve(ORDER) : Promise.reject(new NotFoundError("no order")),
      createOrder: () => Promise.reject(new Error("a bug")),
    },
    // Before authorization, so refused calls are counted too.
    { interceptors: [serverMetrics(registry), authorization((metadata) => metadata.get("authorization").length > 0)] },
    { token: () => Promise.resolve("t"), interceptors: [clientMetrics(registry)] },
  );
}

Deno.test("serverMetrics() counts real calls by method and the status code the client got, and times them", async () => {
  const registry = new Registry();
  await using env = await setup(registry);
  await env.client.getOrder({ id: "o-1", customerId: "" });
  await env.client.getOrder({ id: "o-1", customerId: "" });
  await assert.rejects(env.client.getOrder({ id: "o-2", customerId: "" }), NotFoundError);
  await assert.rejects(env.client.createOrder(CREATE), (err: Error) => err.message === "internal error");
  using anonymous = createGrpcClient(OrdersServiceService, env.server.address);
  await assert.rejects(anonymous.getOrder({ id: "o-1", customerId: "" }), UnauthenticatedError);

  const handled = (method: string, code: string) => valueOf(registry, "grpc_server_handled_total", { method, code });
  assert.equal(await handled(GET_ORDER, "OK"), 2);
  assert.equal(await handled(GET_ORDER, "NOT_FOUND"), 1);
  assert.equal(await handled(GET_ORDER, "UNAUTHENTICATED"), 1);
  assert.equal(await handled(CREATE_ORDER, "INTERNAL"), 1);
  assert.equal(await valueOf(registry, "grpc_server_handling_seconds_count", { method: GET_ORDER }), 4);
  assert.match(await registry.metrics(), /grpc_server_handling_seconds_bucket\{le="0.001",method="\/trellis/);
});

Deno.test("clientMetrics() counts calls made by method and code, and several clients share one registry", async () => {
  const registry = new Registry();
  await using env = await setup(registry);
  using second = createGrpcClient(OrdersServiceService, env.server.address, {
    token: () => Promise.resolve("t"),
    interceptors: [clientMetrics(registry)],
  });
  await env.client.getOrder({ id: "o-1", customerId: "" });
  await second.getOrder({ id: "o-1", customerId: "" });
  await assert.rejects(second.getOrder({ id: "o-2", customerId: "" }), NotFoundError);

  const handled = (code: string) => valueOf(registry, "grpc_client_handled_total", { method: GET_ORDER, code });
  assert.equal(await handled("OK"), 2);
  assert.equal(await handled("NOT_FOUND"), 1);
  assert.equal(await valueOf(registry, "grpc_client_handling_seconds_count", { method: GET_ORDER }), 3);
});
