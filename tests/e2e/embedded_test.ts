import assert from "node:assert/strict";
import { embeddedSystem } from "../support/system.ts";
import { orderScenarios } from "./scenarios.ts";

Deno.test("embedded mode: orders confirm, cancel for stock, cancel for payment, and bad input is refused", async (t) => {
  await using env = await embeddedSystem();
  await orderScenarios(t, env.endpoints);
  await t.step("the gRPC interceptors counted those calls on both ends' /metrics", async () => {
    const metrics = async (service: "gateway" | "orders" | "inventory") =>
      await (await fetch(`${env.system.services[service].url}/metrics`)).text();
    const [gateway, orders, inventory] = await Promise.all([
      metrics("gateway"),
      metrics("orders"),
      metrics("inventory"),
    ]);
    assert.match(
      gateway,
      /^grpc_client_handled_total\{method="\/trellis\.orders\.v1\.OrdersService\/CreateOrder",code="OK"[^}]*\} [1-9]/m,
    );
    assert.match(
      orders,
      /^grpc_server_handled_total\{method="\/trellis\.orders\.v1\.OrdersService\/CreateOrder",code="OK"[^}]*\} [1-9]/m,
    );
    assert.match(
      orders,
      /^grpc_server_handled_total\{method="\/trellis\.orders\.v1\.OrdersService\/GetOrder",code="NOT_FOUND"[^}]*\} [1-9]/m,
    );
    assert.match(inventory, /^grpc_server_handling_seconds_count\{[^}]*method="[^"]+"[^}]*\} [1-9]/m);
  });
});
