import assert from "node:assert/strict";
import { advance, type Order, startSaga } from "./saga.ts";

const base: Order = {
  id: "o-1",
  customerId: "alice",
  items: [{ sku: "tea", quantity: 2 }],
  totalCents: 900,
  paymentToken: "tok_visa",
  status: "PENDING",
  step: "RESERVING",
  reason: "",
};

Deno.test("startSaga() announces the order and asks inventory to reserve its items", () => {
  const out = startSaga(base);
  assert.deepEqual(out.map((o) => [o.topic, o.payload.type]), [
    ["orders.events", "orders.created.v1"],
    ["inventory.commands", "inventory.reserve.v1"],
  ]);
});

Deno.test("advance() charges the total once stock is reserved", () => {
  const d = advance(base, { type: "inventory.reserved.v1", orderId: "o-1" });
  assert.equal(d.order?.step, "CHARGING");
  assert.deepEqual(d.publish[0].payload, {
    type: "payments.charge.v1",
    orderId: "o-1",
    amountCents: 900,
    paymentToken: "tok_visa",
  });
});

Deno.test("advance() cancels with the reason when stock is rejected", () => {
  const d = advance(base, { type: "inventory.rejected.v1", orderId: "o-1", reason: "out of stock: tea" });
  assert.deepEqual(d.order, { status: "CANCELLED", step: "DONE", reason: "out of stock: tea" });
  assert.equal(d.publish[0].payload.type, "orders.cancelled.v1");
});

Deno.test("advance() confirms after a successful charge and notifies", () => {
  const d = advance({ ...base, step: "CHARGING" }, { type: "payments.succeeded.v1", orderId: "o-1", providerRef: "p" });
  assert.equal(d.order?.status, "CONFIRMED");
  assert.deepEqual(d.publish.map((p) => p.topic), ["orders.events", "order.confirmed"]);
});

Deno.test("advance() compensates a failed charge by releasing stock, then cancels keeping the payment reason", () => {
  const charging = { ...base, step: "CHARGING" as const };
  const d1 = advance(charging, { type: "payments.failed.v1", orderId: "o-1", reason: "card declined" });
  assert.deepEqual(d1.order, { status: "PENDING", step: "RELEASING", reason: "card declined" });
  assert.equal(d1.publish[0].payload.type, "inventory.release.v1");
  const d2 = advance({ ...charging, ...d1.order! }, { type: "inventory.released.v1", orderId: "o-1" });
  assert.deepEqual(d2.order, { status: "CANCELLED", step: "DONE", reason: "card declined" });
});

Deno.test("advance() ignores replies that do not fit the current step (duplicates, late messages)", () => {
  const done = { ...base, status: "CONFIRMED" as const, step: "DONE" as const };
  for (
    const ev of [
      { type: "inventory.reserved.v1", orderId: "o-1" },
      { type: "payments.succeeded.v1", orderId: "o-1", providerRef: "p" },
      { type: "payments.failed.v1", orderId: "o-1", reason: "x" },
      { type: "inventory.released.v1", orderId: "o-1" },
    ] as const
  ) {
    assert.deepEqual(advance(done, ev), { publish: [] });
  }
});
