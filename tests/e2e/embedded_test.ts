import assert from "node:assert/strict";
import { embeddedSystem } from "../support/system.ts";
import type { Infra } from "../../services/shared/infra.ts";
import { Topics } from "../../services/shared/events.ts";
import { deadLetterScenario } from "./dead_letters.ts";
import { orderScenarios } from "./scenarios.ts";

Deno.test("embedded mode: orders confirm, cancel for stock, cancel for payment, and bad input is refused", async (t) => {
  let infra: Infra | undefined;
  await using env = await embeddedSystem({ wrap: (i) => infra = i });
  await orderScenarios(t, env.endpoints);
  await deadLetterScenario(t, {
    auth: env.endpoints.auth,
    inventory: env.system.services.inventory.url,
    opsSecret: env.config.clientSecrets.ops,
    publishCommand: async (msg) => await (await infra!.events()).publish(Topics.inventoryCommands, msg),
  });
  await t.step(
    "the gRPC interceptors counted those calls on both ends' /metrics, and every breaker is closed",
    async () => {
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
      // Every internal client runs under its target's breaker, closed after a healthy run: gRPC, HTTP and auth fetches.
      for (const target of ["orders", "inventory", "payments", "notifications", "auth"]) {
        assert.match(gateway, new RegExp(`^circuit_breaker_state\\{[^}]*target="${target}"[^}]*\\} 0$`, "m"), target);
      }
      assert.match(orders, /^circuit_breaker_state\{[^}]*target="inventory"[^}]*\} 0$/m);
      assert.match(inventory, /^circuit_breaker_state\{[^}]*target="auth"[^}]*\} 0$/m);
    },
  );
});
