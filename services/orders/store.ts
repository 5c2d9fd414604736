import { inSpan } from "@trellis/platform/telemetry";
import type { Database, Tx } from "@trellis/platform/db";
import { claimOnce } from "@trellis/platform/outbox";
import { type InventoryEvent, type Item, type PaymentEvent, publishEvent } from "../shared/events.ts";
import * as queries from "./queries.ts";
import { advance, type Decision, expire, type Order, type Outgoing, startSaga } from "./saga.ts";

/** An order as stored, with its timestamps. */
export interface StoredOrder extends Order {
  createdAt: string;
  updatedAt: string;
}

/** The columns of the orders table every generated `select *` row type has (getOrder, lockOrderWithClock, ...). */
export type OrderColumns = Omit<queries.GetOrderRow, "idempotency_key">;

/**
 * An order as stored, from a row of any query that reads `select *` from orders. The check constraints of
 * migrations/orders hold status and step to the saga's values, and items is the array createOrder() stored.
 */
export function orderFromRow(r: OrderColumns): StoredOrder {
  return {
    id: r.id,
    customerId: r.customer_id,
    items: r.items as Item[],
    totalCents: Number(r.total_cents),
    paymentToken: r.payment_token,
    status: r.status as Order["status"],
    step: r.step as Order["step"],
    reason: r.reason,
    deadlineAt: r.deadline_at.toISOString(),
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  };
}

async function publishAll(tx: Tx, orderId: string, out: Outgoing[]): Promise<void> {
  for (const o of out) await publishEvent(tx, { topic: o.topic, key: orderId, payload: o.payload });
}

/** What creating an order needs, already validated and priced. */
export interface NewOrder {
  customerId: string;
  items: Item[];
  totalCents: number;
  paymentToken: string;
  idempotencyKey?: string;
  /** Milliseconds from now (the database's clock) until the saga is given up if still PENDING. */
  deadlineMs: number;
}

/**
 * Stores a PENDING order and its saga's first messages in one transaction. With an idempotency key already used by
 * this customer, returns the order that key created instead (`created: false`).
 *
 * @example
 * ```ts ignore
 * const { order } = await createOrder(db, {
 *   customerId: "alice",
 *   items: [{ sku: "kettle", quantity: 1 }],
 *   totalCents: 3900,
 *   paymentToken: "tok_visa",
 *   deadlineMs: 60_000,
 * });
 * ```
 */
export async function createOrder(db: Database, input: NewOrder): Promise<{ order: StoredOrder; created: boolean }> {
  return await db.transaction(async (tx) => {
    const id = crypto.randomUUID();
    const row = await queries.insertOrder(tx, {
      id,
      customerId: input.customerId,
      items: input.items,
      totalCents: input.totalCents,
      paymentToken: input.paymentToken,
      idempotencyKey: input.idempotencyKey ?? null,
      deadlineMs: input.deadlineMs,
    });
    if (!row) {
      // Only a conflict on (customer_id, idempotency_key) inserts nothing, so the key is set and its order exists.
      const existing = await queries.getOrderByKey(tx, {
        customerId: input.customerId,
        idempotencyKey: input.idempotencyKey!,
      });
      return { order: orderFromRow(existing!), created: false };
    }
    const order = orderFromRow(row);
    await publishAll(tx, order.id, startSaga(order));
    return { order, created: true };
  });
}

/** The order with this id, or `undefined`. */
export async function getOrder(db: Database, id: string): Promise<StoredOrder | undefined> {
  const row = await queries.getOrder(db, { id });
  return row ? orderFromRow(row) : undefined;
}

async function applyDecision(tx: Tx, order: Order, decision: Decision): Promise<void> {
  if (decision.order) {
    await queries.setOrderState(tx, {
      id: order.id,
      status: decision.order.status,
      step: decision.order.step,
      reason: decision.order.reason,
    });
  }
  await publishAll(tx, order.id, decision.publish);
}

/**
 * Applies a reply from inventory or payments to its order's saga, once per message id: the state change and the
 * messages it publishes commit together. A reply that only triggers a compensation (a reservation or charge arriving
 * for an order already cancelled) answers `compensated`. `onCommitted` learns the order as it was and the decision
 * applied, once the transaction committed (for the saga's metrics).
 *
 * @example
 * ```ts ignore
 * await applyReply(db, msg.id, { type: "inventory.reserved.v1", orderId }); // "applied"
 * await applyReply(db, msg.id, { type: "inventory.reserved.v1", orderId }); // "duplicate"
 * ```
 */
export async function applyReply(
  db: Database,
  messageId: string,
  event: InventoryEvent | PaymentEvent,
  onCommitted?: (before: StoredOrder, decision: Decision) => void,
): Promise<"applied" | "compensated" | "duplicate" | "ignored" | "unknown-order"> {
  const attributes = { "order.id": event.orderId, "saga.event": event.type };
  return await inSpan(`saga ${event.type}`, { attributes }, async (span) => {
    let committed: { before: StoredOrder; decision: Decision } | undefined;
    const outcome = await db.transaction(async (tx) => {
      committed = undefined;
      if (!(await claimOnce(tx, "orders-saga", messageId))) return "duplicate";
      const row = await queries.lockOrder(tx, { id: event.orderId });
      if (!row) return "unknown-order";
      const order = orderFromRow(row);
      const decision = advance(order, event);
      span?.setAttributes({ "saga.step": order.step, "saga.next_step": decision.order?.step ?? order.step });
      if (!decision.order && decision.publish.length === 0) return "ignored";
      await applyDecision(tx, order, decision);
      committed = { before: order, decision };
      return decision.order ? "applied" : "compensated";
    });
    span?.setAttribute("saga.outcome", outcome);
    if (committed) onCommitted?.(committed.before, committed.decision);
    return outcome;
  });
}

/** An order the deadline sweep cancelled. */
export interface ExpiredOrder {
  orderId: string;
  /** The step it was stuck in. */
  step: Order["step"];
  reason: string;
}

/**
 * Cancels and compensates PENDING orders past their deadline, oldest deadline first, at most `limit` of them: each
 * in its own transaction, locked with `for update skip locked` (so a reply being applied to it, or another replica's
 * sweep, is not waited for: the order is picked up by the next sweep if still due). The database's clock decides what
 * is due, the same clock that set the deadlines.
 *
 * @example
 * ```ts ignore
 * for (const e of await expireOverdue(db)) log.info("order deadline exceeded", { ...e });
 * ```
 */
export async function expireOverdue(db: Database, limit = 100): Promise<ExpiredOrder[]> {
  const expired: ExpiredOrder[] = [];
  while (expired.length < limit) {
    const one = await db.transaction(async (tx) => {
      const row = await queries.lockOverdueOrder(tx);
      if (!row) return undefined;
      const order = orderFromRow(row);
      const decision = expire(order, row.db_now);
      if (!decision.order) return undefined;
      await applyDecision(tx, order, decision);
      return { orderId: order.id, step: order.step, reason: decision.order.reason };
    });
    if (!one) break;
    expired.push(one);
  }
  return expired;
}
