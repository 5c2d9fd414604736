/**
 * The gateway's order read over real sockets: the real auth and gateway services, and stub orders, inventory and
 * payments gRPC servers whose behaviour each step sets (up, slow past the read's budget, or stopped).
 */
import assert from "node:assert/strict";
import { delay } from "@trellis/platform/async";
import type { Context } from "@trellis/platform/context";
import { GrpcError, type GrpcServer, implement, NotFoundError, serveGrpc, status } from "@trellis/platform/grpc";
import { waitUntil, within } from "@trellis/platform/testing";
import { InventoryServiceService } from "../../proto/gen/trellis/inventory/v1/inventory.ts";
import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import { PaymentsServiceService } from "../../proto/gen/trellis/payments/v1/payments.ts";
import { ApiClient } from "../../tests/e2e/scenarios.ts";
import { freeConfig } from "../../tests/support/system.ts";
import { createAuthService } from "../auth/service.ts";
import { embeddedInfra } from "../shared/embedded.ts";
import { createGatewayService } from "./service.ts";

const ORDER_ID = "6f1c2a4e-8b7d-4c3a-9e2f-1a2b3c4d5e6f";

type Mode = "up" | "slow" | "missing";

/** A stub dependency: answers per `mode`; "slow" waits for its call to be cancelled and records that it was. */
class Stub {
  mode: Mode = "up";
  cancelled = 0;

  async answer<T>(value: T, ctx: Context): Promise<T> {
    if (this.mode === "missing") throw new NotFoundError("nothing here");
    if (this.mode === "slow") {
      // Past the gateway's 500 ms budget for the optional parts; the call's cancellation ends it early.
      await delay(3_000, ctx.signal).catch((err) => {
        this.cancelled++;
        throw err;
      });
    }
    return value;
  }
}

async function gatewayOverStubs() {
  const stubs = { orders: new Stub(), inventory: new Stub(), payments: new Stub() };
  const definitions = {
    orders: implement(OrdersServiceService, {
      createOrder: () => Promise.reject(new GrpcError(status.UNIMPLEMENTED, "not in this test")),
      getOrder: (req, ctx) =>
        stubs.orders.answer({
          id: req.id,
          customerId: req.customerId,
          items: [{ sku: "SKU-1", quantity: 2 }],
          status: "CONFIRMED",
          totalCents: 1_000,
          reason: "",
          createdAt: "2026-12-04T00:00:00Z",
          updatedAt: "2026-12-04T00:00:01Z",
        }, ctx),
    }),
    inventory: implement(InventoryServiceService, {
      listProducts: () => Promise.resolve({ products: [] }),
      getReservation: (req, ctx) =>
        stubs.inventory.answer(
          { orderId: req.orderId, status: "RESERVED", items: [{ sku: "SKU-1", quantity: 2 }] },
          ctx,
        ),
    }),
    payments: implement(PaymentsServiceService, {
      getPayment: (req, ctx) =>
        stubs.payments.answer(
          { orderId: req.orderId, status: "SUCCEEDED", amountCents: 1_000, providerRef: "p-1", reason: "" },
          ctx,
        ),
    }),
  };
  type Name = keyof typeof definitions;
  const servers = {} as Record<Name, GrpcServer>;
  for (const name of Object.keys(definitions) as Name[]) {
    servers[name] = await serveGrpc({ services: [definitions[name]] });
  }
  /** Serves `name` again on the port it had, where the gateway's client looks for it. */
  const restart = async (name: Name) => {
    servers[name] = await serveGrpc({ services: [definitions[name]], port: servers[name].port });
  };
  const base = await freeConfig();
  const config = {
    ...base,
    grpc: { orders: servers.orders.address, inventory: servers.inventory.address, payments: servers.payments.address },
  };
  const infra = embeddedInfra({ storageDir: config.storageDir });
  const auth = createAuthService(config, infra);
  const gateway = createGatewayService(config, infra);
  const stop = async () => {
    await gateway.stop();
    await auth.stop();
    await infra.close();
    await Promise.all(Object.values(servers).map((s) => s.close(0)));
    await Deno.remove(config.storageDir, { recursive: true });
  };
  try {
    await auth.start();
    await gateway.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    stubs,
    servers,
    restart,
    client: await ApiClient.login({ gateway: gateway.url, auth: auth.url }),
    [Symbol.asyncDispose]: stop,
  };
}

Deno.test({
  name:
    "GET /v1/orders/{id} answers with the parts it got and names the rest in `partial`, cancelling slow ones at their budget",
  fn: orderRead,
});

async function orderRead(t: Deno.TestContext) {
  await using env = await within(gatewayOverStubs(), 8_000, "auth, gateway and the stub servers to start");
  const read = async () => {
    const started = performance.now();
    const res = await within(env.client.call("GET", `/v1/orders/${ORDER_ID}`), 8_000, "the order read");
    return { ...res, ms: performance.now() - started };
  };

  await t.step("every dependency up: the order with its reservation and payment, no `partial`", async () => {
    const res = await read();
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.id, ORDER_ID);
    assert.equal(res.body.reservation.status, "RESERVED");
    assert.equal(res.body.payment.status, "SUCCEEDED");
    assert.equal(res.body.partial, undefined);
  });

  await t.step("no payment yet (NOT_FOUND) is an answer, not a failure: payment null, no `partial`", async () => {
    env.stubs.payments.mode = "missing";
    const res = await read();
    assert.equal(res.status, 200);
    assert.equal(res.body.payment, null);
    assert.equal(res.body.partial, undefined);
    env.stubs.payments.mode = "up";
  });

  await t.step(
    "payments slow past the 500 ms budget: 200 without it, in about the budget, its call cancelled",
    async () => {
      env.stubs.payments.mode = "slow";
      const res = await read();
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.reservation.status, "RESERVED");
      assert.equal(res.body.payment, null);
      assert.deepEqual(res.body.partial, ["payment"]);
      assert.ok(res.ms >= 450 && res.ms < 2_000, `the read took ${Math.round(res.ms)} ms`);
      await waitUntil(() => env.stubs.payments.cancelled === 1, 2_000, "the slow payment call to be cancelled");
      env.stubs.payments.mode = "up";
    },
  );

  await t.step(
    "inventory down (its server stopped): 200 with the payment, `partial` names the reservation",
    async () => {
      await within(env.servers.inventory.close(0), 2_000, "the inventory stub to stop");
      const res = await read();
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.reservation, null);
      assert.equal(res.body.payment.status, "SUCCEEDED");
      assert.deepEqual(res.body.partial, ["reservation"]);
    },
  );

  await t.step("everything down: the order is required, so the read fails with 503 problem+json", async () => {
    await within(
      Promise.all([env.servers.orders.close(0), env.servers.payments.close(0)]),
      2_000,
      "the orders and payments stubs to stop",
    );
    const res = await read();
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    assert.equal(res.body.reservation, undefined);
  });

  await t.step(
    "every dependency back on its port: the full answer again once the gateway's clients reconnect",
    async () => {
      for (const name of ["orders", "inventory", "payments"] as const) {
        await within(
          env.restart(name),
          2_000,
          `${name} back`,
        );
      }
      // grpc-js retries a failed connection after its reconnect backoff (1 s, growing), so this takes a few seconds.
      await waitUntil(
        async () => {
          const res = await read();
          return res.status === 200 && res.body.partial === undefined;
        },
        8_000,
        "a full answer after the dependencies came back",
        200,
      );
    },
  );
}
