import {
  type InventoryCommand,
  type InventoryEvent,
  type Item,
  type Notices,
  type OrderConfirmedNotice,
  type OrderEvent,
  type PaymentCommand,
  type PaymentEvent,
  Topics,
} from "../shared/events.ts";

/** Order status visible to customers. */
export type OrderStatus = "PENDING" | "CONFIRMED" | "CANCELLED";
/** Where the order saga stands. */
export type SagaStep = "RESERVING" | "CHARGING" | "RELEASING" | "DONE";

export interface Order {
  id: string;
  customerId: string;
  items: Item[];
  totalCents: number;
  paymentToken: string;
  status: OrderStatus;
  step: SagaStep;
  reason: string;
}

/** A message the saga wants published with its state change, in the same transaction. */
export type Outgoing =
  | { topic: typeof Topics.orderEvents; payload: OrderEvent }
  | { topic: typeof Topics.inventoryCommands; payload: InventoryCommand }
  | { topic: typeof Topics.paymentCommands; payload: PaymentCommand }
  | { topic: typeof Notices.orderConfirmed; payload: OrderConfirmedNotice };

/** The saga's decision: the new state (when it changes) and what to publish. */
export interface Decision {
  order?: Pick<Order, "status" | "step" | "reason">;
  publish: Outgoing[];
}

/** What starting the saga for a new order publishes. */
export function startSaga(order: Order): Outgoing[] {
  return [
    {
      topic: Topics.orderEvents,
      payload: {
        type: "orders.created.v1",
        orderId: order.id,
        customerId: order.customerId,
        items: order.items,
        totalCents: order.totalCents,
      },
    },
    {
      topic: Topics.inventoryCommands,
      payload: { type: "inventory.reserve.v1", orderId: order.id, items: order.items },
    },
  ];
}

/**
 * The order saga as a pure function: reserve stock, then charge; on a failed charge release the stock, then cancel.
 * A reply that does not fit the current step (a duplicate or a late message) changes nothing.
 */
export function advance(order: Order, event: InventoryEvent | PaymentEvent, now: Date = new Date()): Decision {
  const cancel = (reason: string): Decision => ({
    order: { status: "CANCELLED", step: "DONE", reason },
    publish: [{
      topic: Topics.orderEvents,
      payload: { type: "orders.cancelled.v1", orderId: order.id, customerId: order.customerId, reason },
    }],
  });
  switch (event.type) {
    case "inventory.reserved.v1":
      if (order.step !== "RESERVING") break;
      return {
        order: { status: "PENDING", step: "CHARGING", reason: "" },
        publish: [{
          topic: Topics.paymentCommands,
          payload: {
            type: "payments.charge.v1",
            orderId: order.id,
            amountCents: order.totalCents,
            paymentToken: order.paymentToken,
          },
        }],
      };
    case "inventory.rejected.v1":
      if (order.step !== "RESERVING") break;
      return cancel(event.reason);
    case "payments.succeeded.v1":
      if (order.step !== "CHARGING") break;
      return {
        order: { status: "CONFIRMED", step: "DONE", reason: "" },
        publish: [
          {
            topic: Topics.orderEvents,
            payload: {
              type: "orders.confirmed.v1",
              orderId: order.id,
              customerId: order.customerId,
              totalCents: order.totalCents,
            },
          },
          {
            topic: "order.confirmed",
            payload: {
              type: "order.confirmed.v1",
              orderId: order.id,
              customerId: order.customerId,
              items: order.items,
              totalCents: order.totalCents,
              confirmedAt: now.toISOString(),
            },
          },
        ],
      };
    case "payments.failed.v1":
      if (order.step !== "CHARGING") break;
      return {
        order: { status: "PENDING", step: "RELEASING", reason: event.reason },
        publish: [{ topic: Topics.inventoryCommands, payload: { type: "inventory.release.v1", orderId: order.id } }],
      };
    case "inventory.released.v1":
      if (order.step !== "RELEASING") break;
      return cancel(order.reason || "stock released");
  }
  return { publish: [] };
}
