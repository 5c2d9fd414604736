import assert from "node:assert/strict";
import type { Database } from "@trellis/platform/db";
import { encodeMessage } from "@trellis/platform/messaging/schema";
import {
  decodeEvent,
  events,
  EventTypes,
  type InventoryEvent,
  type Item,
  type OrderConfirmedNotice,
  type OrderEvent,
  type PaymentCommand,
  type PaymentEvent,
  publishEvent,
  SchemaError,
} from "./events.ts";

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
function assertType<_T extends true>(): void {}

const enc = new TextEncoder();
const msg = (body: unknown) => ({ headers: {}, payload: enc.encode(JSON.stringify(body)) });

Deno.test("the event types inferred from the schemas are the hand-written contract", () => {
  assertType<Equals<Item, { sku: string; quantity: number }>>();
  assertType<
    Equals<
      OrderEvent,
      | { type: "orders.created.v1"; orderId: string; customerId: string; items: Item[]; totalCents: number }
      | { type: "orders.confirmed.v1"; orderId: string; customerId: string; totalCents: number }
      | { type: "orders.cancelled.v1"; orderId: string; customerId: string; reason: string }
    >
  >();
  assertType<
    Equals<
      InventoryEvent,
      | { type: "inventory.reserved.v1"; orderId: string }
      | { type: "inventory.rejected.v1"; orderId: string; reason: string }
      | { type: "inventory.released.v1"; orderId: string }
    >
  >();
  assertType<
    Equals<
      PaymentCommand,
      | { type: "payments.charge.v1"; orderId: string; amountCents: number; paymentToken: string }
      | { type: "payments.refund.v1"; orderId: string; reason: string }
    >
  >();
  assertType<
    Equals<
      PaymentEvent,
      | { type: "payments.succeeded.v1"; orderId: string; providerRef: string }
      | { type: "payments.failed.v1"; orderId: string; reason: string }
      | { type: "payments.refunded.v1"; orderId: string; amountCents: number; refundRef: string }
      | { type: "payments.voided.v1"; orderId: string }
    >
  >();
  assertType<
    Equals<OrderConfirmedNotice, {
      type: "order.confirmed.v1";
      orderId: string;
      customerId: string;
      items: Item[];
      totalCents: number;
      confirmedAt: string;
    }>
  >();
  assert.equal(EventTypes.length, 15);
});

Deno.test("decodeEvent() validates the payload and narrows to the expected types", () => {
  const cmd = decodeEvent(msg({ type: "payments.charge.v1", orderId: "o-1", amountCents: 500, paymentToken: "tok" }), [
    "payments.charge.v1",
  ]);
  assert.equal(cmd.amountCents, 500);
  assert.throws(
    () => decodeEvent(msg({ type: "payments.charge.v1", orderId: "o-1", amountCents: -5 }), ["payments.charge.v1"]),
    (e: unknown) =>
      e instanceof SchemaError && e.type === "payments.charge.v1" &&
      e.errors.map((v) => v.path).join() === "/amountCents,/paymentToken",
  );
  assert.throws(() => decodeEvent(msg({ type: "orders.created.v1" }), ["payments.charge.v1"]), SchemaError);
});

Deno.test("publishEvent() validates before enqueueing and writes what encodeMessage() encodes, headers and bytes", async () => {
  const queries: unknown[][] = [];
  const tx = { query: (_sql: string, params: unknown[] = []) => (queries.push(params), Promise.resolve([])) };
  const asTx = tx as unknown as Parameters<Parameters<Database["transaction"]>[0]>[0];
  const payload = { type: "inventory.rejected.v1", orderId: "o-1", reason: "out of stock: kettle" } as const;
  await publishEvent(asTx, { topic: "inventory.events", key: "o-1", payload });
  const encoded = encodeMessage(events, payload, { key: "o-1" });
  const [, topic, key, headers, text] = queries[0];
  assert.deepEqual([topic, key], ["inventory.events", "o-1"]);
  assert.deepEqual(headers, encoded.headers);
  assert.equal((headers as Record<string, string>)["message-type"], "inventory.rejected.v1");
  assert.deepEqual(enc.encode(text as string), encoded.payload);
  await assert.rejects(
    publishEvent(asTx, { topic: "inventory.events", payload: { type: "inventory.rejected.v1", orderId: "" } as never }),
    SchemaError,
  );
  assert.equal(queries.length, 2, "nothing is written for an invalid event");
});
