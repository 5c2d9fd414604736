import type { Tx } from "@trellis/platform/db";
import type { Message } from "@trellis/platform/messaging";
import {
  createMessageRegistry,
  decodeMessage,
  defineMessageType,
  encodeMessage,
  type Infer,
  type MessageOf,
  s,
  SchemaError,
} from "@trellis/platform/messaging/schema";
import { enqueue } from "@trellis/platform/outbox";

export { SchemaError };

/**
 * The messages the services exchange: topics and payload shapes. This is the published contract between services;
 * each payload carries a `type` with its version.
 */

/** Durable topics, ordered per key: the saga's events and commands (`Infra.events()`, Kafka in distributed mode). */
export const Topics = {
  orderEvents: "orders.events",
  inventoryCommands: "inventory.commands",
  inventoryEvents: "inventory.events",
  paymentCommands: "payments.commands",
  paymentEvents: "payments.events",
} as const;

/**
 * What the system tells a customer: an `order.confirmed` notice is a receipt the customer is owed, so it travels on
 * the durable jobs bus (`Infra.jobs()`: a JetStream stream and durable consumer in distributed mode), not on the
 * at-most-once `Infra.notices()` bus, which carries nothing the customer is owed.
 */
export const Notices = {
  orderConfirmed: "order.confirmed",
} as const;

const OrderId = s.string({ minLength: 1, maxLength: 128 });
const CustomerId = s.string({ minLength: 1, maxLength: 256 });
const Reason = s.string();
const Cents = s.integer({ minimum: 0 });
const ItemSchema = s.object({ sku: s.string({ minLength: 1, maxLength: 128 }), quantity: s.integer({ minimum: 1 }) });
const Items = s.array(ItemSchema, { minItems: 1, maxItems: 1000 });

/**
 * Every published message type. A type, once published, only gains optional properties; any other change is a new
 * version (`….v2`) published alongside it. `services/shared/events_compat_test.ts` holds this list to the snapshot in
 * `schemas/events.snapshot.json` (update it with `deno task schemas:snapshot`).
 */
export const EventTypes = [
  defineMessageType({
    type: "orders.created.v1",
    schema: s.object({ orderId: OrderId, customerId: CustomerId, items: Items, totalCents: Cents }),
  }),
  defineMessageType({
    type: "orders.confirmed.v1",
    schema: s.object({ orderId: OrderId, customerId: CustomerId, totalCents: Cents }),
  }),
  defineMessageType({
    type: "orders.cancelled.v1",
    schema: s.object({ orderId: OrderId, customerId: CustomerId, reason: Reason }),
  }),
  defineMessageType({ type: "inventory.reserve.v1", schema: s.object({ orderId: OrderId, items: Items }) }),
  defineMessageType({ type: "inventory.release.v1", schema: s.object({ orderId: OrderId }) }),
  defineMessageType({ type: "inventory.reserved.v1", schema: s.object({ orderId: OrderId }) }),
  defineMessageType({ type: "inventory.rejected.v1", schema: s.object({ orderId: OrderId, reason: Reason }) }),
  defineMessageType({ type: "inventory.released.v1", schema: s.object({ orderId: OrderId }) }),
  defineMessageType({
    type: "payments.charge.v1",
    schema: s.object({ orderId: OrderId, amountCents: Cents, paymentToken: s.string({ minLength: 1 }) }),
  }),
  defineMessageType({ type: "payments.succeeded.v1", schema: s.object({ orderId: OrderId, providerRef: s.string() }) }),
  defineMessageType({ type: "payments.failed.v1", schema: s.object({ orderId: OrderId, reason: Reason }) }),
  // Compensation for a cancelled order: refund its charge, or void the order so a charge arriving later is refused.
  defineMessageType({ type: "payments.refund.v1", schema: s.object({ orderId: OrderId, reason: Reason }) }),
  defineMessageType({
    type: "payments.refunded.v1",
    schema: s.object({ orderId: OrderId, amountCents: Cents, refundRef: s.string() }),
  }),
  defineMessageType({ type: "payments.voided.v1", schema: s.object({ orderId: OrderId }) }),
  defineMessageType({
    type: "order.confirmed.v1",
    schema: s.object({
      orderId: OrderId,
      customerId: CustomerId,
      items: Items,
      totalCents: Cents,
      confirmedAt: s.string({ pattern: "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$" }),
    }),
  }),
] as const;

/** The registry of {@linkcode EventTypes}, for encoding, decoding and validating. */
export const events = createMessageRegistry(EventTypes);

/** A payload of one of the published types, by name. */
export type Event<T extends EventType = EventType> = MessageOf<Extract<(typeof EventTypes)[number], { type: T }>>;
/** The name of a published type. */
export type EventType = (typeof EventTypes)[number]["type"];

export type Item = Infer<typeof ItemSchema>;
export type OrderEvent = Event<"orders.created.v1" | "orders.confirmed.v1" | "orders.cancelled.v1">;
export type InventoryCommand = Event<"inventory.reserve.v1" | "inventory.release.v1">;
export type InventoryEvent = Event<"inventory.reserved.v1" | "inventory.rejected.v1" | "inventory.released.v1">;
export type PaymentCommand = Event<"payments.charge.v1" | "payments.refund.v1">;
export type PaymentEvent = Event<
  "payments.succeeded.v1" | "payments.failed.v1" | "payments.refunded.v1" | "payments.voided.v1"
>;
export type OrderConfirmedNotice = Event<"order.confirmed.v1">;

/**
 * Decodes a JSON message, checks its type is one of `types` and validates it against that type's schema; throws a
 * {@linkcode SchemaError} (not retryable) naming the type and every failing path otherwise.
 */
export function decodeEvent<const T extends EventType>(
  msg: Pick<Message, "headers" | "payload">,
  types: readonly T[],
): Event<T> {
  return decodeMessage(events, msg, types) as Event<T>;
}

/**
 * Validates `payload` against its type's schema (throwing {@linkcode SchemaError}), encodes it with the schema
 * package's `encodeMessage` (JSON bytes, `content-type` and `message-type` headers) and writes that message to the
 * outbox in `tx`, which the relay publishes byte for byte. The one place services publish events.
 */
export async function publishEvent(
  tx: Tx,
  msg: { topic: string; key?: string; payload: Event },
): Promise<string> {
  return await enqueue(tx, { topic: msg.topic, ...encodeMessage(events, msg.payload, { key: msg.key }) });
}
