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
  /** When a saga still PENDING is given up and compensated (ISO 8601). */
  deadlineAt: string;
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

function cancel(order: Order, reason: string, compensate: Outgoing[] = []): Decision {
  return {
    order: { status: "CANCELLED", step: "DONE", reason },
    publish: [...compensate, {
      topic: Topics.orderEvents,
      payload: { type: "orders.cancelled.v1", orderId: order.id, customerId: order.customerId, reason },
    }],
  };
}

function release(order: Order): Outgoing {
  return { topic: Topics.inventoryCommands, payload: { type: "inventory.release.v1", orderId: order.id } };
}

function refund(order: Order, reason: string): Outgoing {
  return { topic: Topics.paymentCommands, payload: { type: "payments.refund.v1", orderId: order.id, reason } };
}

/**
 * The order saga as a pure function: reserve stock, then charge; on a failed charge release the stock, then cancel.
 * A reply that does not fit the current step (a duplicate or a late message) changes nothing, except that a
 * reservation or a charge arriving for an order already CANCELLED (by its deadline, see {@linkcode expire}) is undone:
 * its stock is released, its charge refunded.
 *
 * @example
 * ```ts ignore
 * const decision = advance(order, { type: "inventory.reserved.v1", orderId: order.id });
 * decision.order?.step; // "CHARGING", and decision.publish holds the payments.charge.v1 command
 * ```
 */
export function advance(order: Order, event: InventoryEvent | PaymentEvent, now: Date = new Date()): Decision {
  switch (event.type) {
    case "inventory.reserved.v1":
      if (order.status === "CANCELLED") return { publish: [release(order)] };
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
      return cancel(order, event.reason);
    case "payments.succeeded.v1":
      if (order.status === "CANCELLED") return { publish: [refund(order, `order cancelled: ${order.reason}`)] };
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
        publish: [release(order)],
      };
    case "inventory.released.v1":
      if (order.step !== "RELEASING") break;
      return cancel(order, order.reason || "stock released");
    // Answers to the saga's compensations: nothing is left to do once they arrive.
    case "payments.refunded.v1":
    case "payments.voided.v1":
      break;
  }
  return { publish: [] };
}

/**
 * Gives up on an order still PENDING at its deadline: cancels it with the step it was stuck in as the reason, and
 * compensates whatever that step may have done or may still do. A reservation or charge may be in flight, so stock is
 * released and the payment refunded (or voided, when no charge exists yet) even when no reply said they happened;
 * both commands are harmless for an order they never touched. An order that is not PENDING, or not yet due, is left
 * alone.
 *
 * @example
 * ```ts ignore
 * const decision = expire(order, new Date());
 * decision.order?.reason; // "deadline exceeded while RESERVING"
 * ```
 */
export function expire(order: Order, now: Date): Decision {
  if (order.status !== "PENDING" || now.getTime() < Date.parse(order.deadlineAt)) return { publish: [] };
  const reason = `deadline exceeded while ${order.step}`;
  switch (order.step) {
    case "RESERVING":
      return cancel(order, reason, [release(order)]);
    case "CHARGING":
      return cancel(order, reason, [refund(order, reason), release(order)]);
    case "RELEASING":
      // The payment already failed; the customer's reason is that failure, and the release is only being repeated.
      return cancel(order, order.reason || reason, [release(order)]);
    case "DONE":
      break;
  }
  return { publish: [] };
}
