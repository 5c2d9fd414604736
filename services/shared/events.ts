/**
 * The messages the services exchange: topics and payload shapes. This is the published contract between services;
 * each payload carries a `type` with its version.
 */

/** Durable topics (Kafka in distributed mode). */
export const Topics = {
  orderEvents: "orders.events",
  inventoryCommands: "inventory.commands",
  inventoryEvents: "inventory.events",
  paymentCommands: "payments.commands",
  paymentEvents: "payments.events",
} as const;

/** At-most-once notification subjects (NATS Core in distributed mode). */
export const Notices = {
  orderConfirmed: "order.confirmed",
} as const;

export interface Item {
  sku: string;
  quantity: number;
}

export type OrderEvent =
  | { type: "orders.created.v1"; orderId: string; customerId: string; items: Item[]; totalCents: number }
  | { type: "orders.confirmed.v1"; orderId: string; customerId: string; totalCents: number }
  | { type: "orders.cancelled.v1"; orderId: string; customerId: string; reason: string };

export type InventoryCommand =
  | { type: "inventory.reserve.v1"; orderId: string; items: Item[] }
  | { type: "inventory.release.v1"; orderId: string };

export type InventoryEvent =
  | { type: "inventory.reserved.v1"; orderId: string }
  | { type: "inventory.rejected.v1"; orderId: string; reason: string }
  | { type: "inventory.released.v1"; orderId: string };

export type PaymentCommand = { type: "payments.charge.v1"; orderId: string; amountCents: number; paymentToken: string };

export type PaymentEvent =
  | { type: "payments.succeeded.v1"; orderId: string; providerRef: string }
  | { type: "payments.failed.v1"; orderId: string; reason: string };

export interface OrderConfirmedNotice {
  type: "order.confirmed.v1";
  orderId: string;
  customerId: string;
  items: Item[];
  totalCents: number;
  confirmedAt: string;
}

const dec = new TextDecoder();

/**
 * Decodes a JSON message payload and checks it has one of the expected `type`s; throws a `TypeError` naming what
 * arrived otherwise.
 */
export function decodeEvent<T extends { type: string }>(payload: Uint8Array, types: readonly T["type"][]): T {
  const value = JSON.parse(dec.decode(payload));
  if (typeof value !== "object" || value === null || !types.includes(value.type)) {
    throw new TypeError(`Cannot decode message as ${types.join(" | ")}: type is ${JSON.stringify(value?.type)}`);
  }
  return value as T;
}
