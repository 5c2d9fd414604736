import type { Database, Tx } from "@trellis/platform/db";
import { claimOnce } from "@trellis/platform/outbox";
import { type InventoryEvent, type Item, type PaymentEvent, publishEvent } from "../shared/events.ts";
import { advance, type Decision, expire, type Order, type Outgoing, startSaga } from "./saga.ts";

interface OrderRow {
  id: string;
  customer_id: string;
  items: Item[];
  total_cents: string;
  payment_token: string;
  status: Order["status"];
  step: Order["step"];
  reason: string;
  deadline_at: Date;
  created_at: Date;
  updated_at: Date;
  [k: string]: unknown;
}

/** An order as stored, with its timestamps. */
export interface StoredOrder extends Order {
  createdAt: string;
  updatedAt: string;
}

function fromRow(r: OrderRow): StoredOrder {
  return {
    id: r.id,
    customerId: r.customer_id,
    items: r.items,
    totalCents: Number(r.total_cents),
    paymentToken: r.payment_token,
    status: r.status,
    step: r.step,
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
    const rows = await tx.query<OrderRow>(
      `insert into orders (id, customer_id, items, total_cents, payment_token, status, step, idempotency_key, deadline_at)
       values ($1, $2, $3::jsonb, $4, $5, 'PENDING', 'RESERVING', $6, now() + $7::double precision * interval '1 millisecond')
       on conflict (customer_id, idempotency_key) do nothing
       returning *`,
      [
        id,
        input.customerId,
        input.items,
        input.totalCents,
        input.paymentToken,
        input.idempotencyKey ?? null,
        input.deadlineMs,
      ],
    );
    if (rows.length === 0) {
      const [existing] = await tx.query<OrderRow>(
        "select * from orders where customer_id = $1 and idempotency_key = $2",
        [input.customerId, input.idempotencyKey],
      );
      return { order: fromRow(existing), created: false };
    }
    const order = fromRow(rows[0]);
    await publishAll(tx, order.id, startSaga(order));
    return { order, created: true };
  });
}

/** The order with this id, or `undefined`. */
export async function getOrder(db: Database, id: string): Promise<StoredOrder | undefined> {
  const [row] = await db.query<OrderRow>("select * from orders where id = $1", [id]);
  return row ? fromRow(row) : undefined;
}

async function applyDecision(tx: Tx, order: Order, decision: Decision): Promise<void> {
  if (decision.order) {
    await tx.query(
      "update orders set status = $2, step = $3, reason = $4, updated_at = now() where id = $1",
      [order.id, decision.order.status, decision.order.step, decision.order.reason],
    );
  }
  await publishAll(tx, order.id, decision.publish);
}

/**
 * Applies a reply from inventory or payments to its order's saga, once per message id: the state change and the
 * messages it publishes commit together. A reply that only triggers a compensation (a reservation or charge arriving
 * for an order already cancelled) answers `compensated`.
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
): Promise<"applied" | "compensated" | "duplicate" | "ignored" | "unknown-order"> {
  return await db.transaction(async (tx) => {
    if (!(await claimOnce(tx, "orders-saga", messageId))) return "duplicate";
    const [row] = await tx.query<OrderRow>("select * from orders where id = $1 for update", [event.orderId]);
    if (!row) return "unknown-order";
    const order = fromRow(row);
    const decision = advance(order, event);
    if (!decision.order && decision.publish.length === 0) return "ignored";
    await applyDecision(tx, order, decision);
    return decision.order ? "applied" : "compensated";
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
      const [row] = await tx.query<OrderRow & { db_now: Date }>(
        `select *, now() as db_now from orders where status = 'PENDING' and deadline_at <= now()
         order by deadline_at limit 1 for update skip locked`,
      );
      if (!row) return undefined;
      const order = fromRow(row);
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
