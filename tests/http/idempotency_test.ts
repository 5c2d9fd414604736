import assert from "node:assert/strict";
import { ApiClient } from "../e2e/scenarios.ts";
import { embeddedSystem } from "../support/system.ts";

Deno.test("the gateway replays a POST /v1/orders with the same Idempotency-Key and refuses a changed body with 422", async (t) => {
  await using env = await embeddedSystem();
  const alice = await ApiClient.login(env.endpoints);
  const carol = await ApiClient.login(env.endpoints, "carol", "chocolate");
  const key = `order-${crypto.randomUUID()}`;
  const order = { items: [{ sku: "mug-blue", quantity: 1 }] };
  const post = (client: ApiClient, body: unknown, k = key) =>
    client.call("POST", "/v1/orders", body, { "idempotency-key": k });

  const first = await post(alice, order);
  assert.equal(first.status, 202, JSON.stringify(first.body));

  await t.step("a replay answers the same status, order and Location, marked as replayed", async () => {
    const again = await post(alice, order);
    assert.equal(again.status, 202);
    assert.deepEqual(again.body, first.body, "the stored answer, not the order as it is now");
    assert.equal(again.headers.get("location"), `/v1/orders/${first.body.id}`);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(first.headers.get("idempotent-replayed"), null);
  });

  await t.step("the same key with a changed body is 422 problem+json and places no order", async () => {
    const changed = await post(alice, { items: [{ sku: "mug-blue", quantity: 2 }] });
    assert.equal(changed.status, 422);
    assert.equal(changed.headers.get("content-type"), "application/problem+json");
    assert.equal(changed.body.type, "https://trellis.dev/problems/idempotency-key-mismatch");
  });

  await t.step("another user's identical key places their own order", async () => {
    const theirs = await post(carol, order);
    assert.equal(theirs.status, 202, JSON.stringify(theirs.body));
    assert.notEqual(theirs.body.id, first.body.id);
  });

  await t.step("a malformed key is 400 problem+json", async () => {
    const bad = await post(alice, order, "two words");
    assert.equal(bad.status, 400);
    assert.equal(bad.body.type, "https://trellis.dev/problems/bad-idempotency-key");
  });
});
