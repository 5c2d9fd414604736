import assert from "node:assert/strict";
import { createGrpcClient, NotFoundError, PermissionDeniedError, UnauthenticatedError } from "@trellis/platform/grpc";
import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import { embeddedSystem } from "../support/system.ts";

async function token(authUrl: string, form: Record<string, string>): Promise<string> {
  const res = await fetch(`${authUrl}/oauth/token`, { method: "POST", body: new URLSearchParams(form) });
  assert.equal(res.status, 200);
  return (await res.json()).access_token;
}

Deno.test("orders authorizes on the end user's own token, sent beside the calling service's token", async (t) => {
  await using env = await embeddedSystem();
  const auth = env.endpoints.auth;
  const serviceToken = await token(auth, {
    grant_type: "client_credentials",
    client_id: "gateway",
    client_secret: env.config.clientSecrets.gateway,
    audience: "orders",
  });
  const alice = await token(auth, { grant_type: "password", username: "alice", password: "wonderland" });
  const carol = await token(auth, { grant_type: "password", username: "carol", password: "chocolate" });
  using orders = createGrpcClient(OrdersServiceService, env.config.grpc.orders, {
    token: () => Promise.resolve(serviceToken),
  });
  const asUser = (userToken: string) => ({ metadata: { "x-end-user-token": userToken } });
  const order = {
    customerId: "user-alice",
    items: [{ sku: "mug-blue", quantity: 1 }],
    paymentToken: "tok_visa",
    idempotencyKey: "",
  };

  await t.step("the end user's identity decides the customer of a new order", async () => {
    const created = await orders.createOrder({ ...order, customerId: "" }, asUser(alice));
    assert.equal(created.customerId, "user-alice");
  });
  await t.step("a customer_id that is not the end user is refused", async () => {
    await assert.rejects(orders.createOrder(order, asUser(carol)), PermissionDeniedError);
  });
  await t.step("an end-user token that does not verify is refused", async () => {
    await assert.rejects(orders.createOrder(order, asUser(serviceToken)), UnauthenticatedError);
    await assert.rejects(orders.createOrder(order, asUser(alice + "x")), UnauthenticatedError);
  });
  await t.step("one user cannot read another's order through a service", async () => {
    const created = await orders.createOrder(order, asUser(alice));
    await assert.rejects(orders.getOrder({ id: created.id, customerId: "" }, asUser(carol)), /not found/);
    assert.equal((await orders.getOrder({ id: created.id, customerId: "" }, asUser(alice))).id, created.id);
  });
  await t.step("an id that cannot be an order id is NOT_FOUND, not INTERNAL", async () => {
    await assert.rejects(orders.getOrder({ id: "\u0000", customerId: "" }, asUser(alice)), NotFoundError);
  });
});
