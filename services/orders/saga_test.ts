import assert from "node:assert/strict";
import { advance, expire, type Order, startSaga } from "./saga.ts";

const base: Order = {
  id: "o-1",
  customerId: "alice",
  items: [{ sku: "tea", quantity: 2 }],
  totalCents: 900,
  paymentToken: "tok_visa",
  status: "PENDING",
  step: "RESERVING",
  reason: "",
  deadlineAt: "2026-01-01T00:01:00.000Z",
};

const due = new Date("2026-01-01T00:01:00.000Z");
const topicsAndTypes = (d: { publish: { topic: string; payload: { type: string } }[] }) =>
  d.publish.map((o) => [o.topic, o.payload.type]);

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

Deno.test("expire() cancels an order stuck RESERVING and releases whatever stock a late reservation may take", () => {
  const d = expire(base, due);
  assert.deepEqual(d.order, { status: "CANCELLED", step: "DONE", reason: "deadline exceeded while RESERVING" });
  assert.deepEqual(topicsAndTypes(d), [
    ["inventory.commands", "inventory.release.v1"],
    ["orders.events", "orders.cancelled.v1"],
  ]);
  assert.deepEqual(d.publish[1].payload, {
    type: "orders.cancelled.v1",
    orderId: "o-1",
    customerId: "alice",
    reason: "deadline exceeded while RESERVING",
  });
});

Deno.test("expire() cancels an order stuck CHARGING, refunding or voiding its payment and releasing its stock", () => {
  const d = expire({ ...base, step: "CHARGING" }, due);
  assert.deepEqual(d.order, { status: "CANCELLED", step: "DONE", reason: "deadline exceeded while CHARGING" });
  assert.deepEqual(topicsAndTypes(d), [
    ["payments.commands", "payments.refund.v1"],
    ["inventory.commands", "inventory.release.v1"],
    ["orders.events", "orders.cancelled.v1"],
  ]);
  assert.deepEqual(d.publish[0].payload, {
    type: "payments.refund.v1",
    orderId: "o-1",
    reason: "deadline exceeded while CHARGING",
  });
});

Deno.test("expire() cancels an order stuck RELEASING with its payment's reason and asks for the release again", () => {
  const d = expire({ ...base, step: "RELEASING", reason: "card declined" }, due);
  assert.deepEqual(d.order, { status: "CANCELLED", step: "DONE", reason: "card declined" });
  assert.deepEqual(topicsAndTypes(d), [
    ["inventory.commands", "inventory.release.v1"],
    ["orders.events", "orders.cancelled.v1"],
  ]);
});

Deno.test("expire() leaves alone an order before its deadline, and one already CONFIRMED or CANCELLED", () => {
  assert.deepEqual(expire(base, new Date(due.getTime() - 1)), { publish: [] });
  assert.deepEqual(expire({ ...base, status: "CONFIRMED", step: "DONE" }, due), { publish: [] });
  assert.deepEqual(expire({ ...base, status: "CANCELLED", step: "DONE", reason: "x" }, due), { publish: [] });
});

Deno.test("advance() releases the stock of a reservation that arrives after the order was cancelled, changing nothing else", () => {
  const cancelled = { ...base, ...expire(base, due).order! };
  const d = advance(cancelled, { type: "inventory.reserved.v1", orderId: "o-1" });
  assert.equal(d.order, undefined);
  assert.deepEqual(d.publish, [{
    topic: "inventory.commands",
    payload: { type: "inventory.release.v1", orderId: "o-1" },
  }]);
});

Deno.test("advance() refunds a charge that succeeds after the order was cancelled, changing nothing else", () => {
  const cancelled = { ...base, ...expire({ ...base, step: "CHARGING" }, due).order! };
  const d = advance(cancelled, { type: "payments.succeeded.v1", orderId: "o-1", providerRef: "ch_1" });
  assert.equal(d.order, undefined);
  assert.deepEqual(d.publish, [{
    topic: "payments.commands",
    payload: {
      type: "payments.refund.v1",
      orderId: "o-1",
      reason: "order cancelled: deadline exceeded while CHARGING",
    },
  }]);
});

Deno.test("advance() takes no action on late failures, rejections, releases, refunds and voids of a cancelled order", () => {
  const cancelled = { ...base, status: "CANCELLED" as const, step: "DONE" as const, reason: "deadline exceeded" };
  for (
    const ev of [
      { type: "inventory.rejected.v1", orderId: "o-1", reason: "out of stock: tea" },
      { type: "inventory.released.v1", orderId: "o-1" },
      { type: "payments.failed.v1", orderId: "o-1", reason: "card declined" },
      { type: "payments.refunded.v1", orderId: "o-1", amountCents: 900, refundRef: "re_1" },
      { type: "payments.voided.v1", orderId: "o-1" },
    ] as const
  ) {
    assert.deepEqual(advance(cancelled, ev), { publish: [] }, ev.type);
  }
});

Deno.test("advance() ignores refund and void answers while the saga is still running", () => {
  for (const step of ["RESERVING", "CHARGING", "RELEASING"] as const) {
    assert.deepEqual(advance({ ...base, step }, { type: "payments.voided.v1", orderId: "o-1" }), { publish: [] });
    assert.deepEqual(
      advance({ ...base, step }, { type: "payments.refunded.v1", orderId: "o-1", amountCents: 1, refundRef: "r" }),
      { publish: [] },
    );
  }
});
