import type { Database, Tx } from "../../platform/db/db.ts";
import { claimOnce } from "../../platform/outbox/outbox.ts";
import { type InventoryEvent, type Item, type PaymentEvent, publishEvent } from "../shared/events.ts";
import { advance, type Order, type Outgoing, startSaga } from "./saga.ts";

interface OrderRow {
  id: string;
  customer_id: string;
  items: Item[] | string;
  total_cents: string | number;
  payment_token: string;
  status: Order["status"];
  step: Order["step"];
  reason: string;
  created_at: Date | string;
  updated_at: Date | string;
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
    items: typeof r.items === "string" ? JSON.parse(r.items) : r.items,
    totalCents: Number(r.total_cents),
    paymentToken: r.payment_token,
    status: r.status,
    step: r.step,
    reason: r.reason,
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
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
}

/**
 * Stores a PENDING order and its saga's first messages in one transaction. With an idempotency key already used by
 * this customer, returns the order that key created instead (`created: false`).
 */
export async function createOrder(db: Database, input: NewOrder): Promise<{ order: StoredOrder; created: boolean }> {
  return await db.transaction(async (tx) => {
    const id = crypto.randomUUID();
    const rows = await tx.query<OrderRow>(
      `insert into orders (id, customer_id, items, total_cents, payment_token, status, step, idempotency_key)
       values ($1, $2, $3::jsonb, $4, $5, 'PENDING', 'RESERVING', $6)
       on conflict (customer_id, idempotency_key) do nothing
       returning *`,
      [
        id,
        input.customerId,
        JSON.stringify(input.items),
        input.totalCents,
        input.paymentToken,
        input.idempotencyKey ?? null,
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

/**
 * Applies a reply from inventory or payments to its order's saga, once per message id: the state change and the
 * messages it publishes commit together.
 */
export async function applyReply(
  db: Database,
  messageId: string,
  event: InventoryEvent | PaymentEvent,
): Promise<"applied" | "duplicate" | "ignored" | "unknown-order"> {
  return await db.transaction(async (tx) => {
    if (!(await claimOnce(tx, "orders-saga", messageId))) return "duplicate";
    const [row] = await tx.query<OrderRow>("select * from orders where id = $1 for update", [event.orderId]);
    if (!row) return "unknown-order";
    const order = fromRow(row);
    const decision = advance(order, event);
    if (!decision.order) return "ignored";
    await tx.query(
      "update orders set status = $2, step = $3, reason = $4, updated_at = now() where id = $1",
      [order.id, decision.order.status, decision.order.step, decision.order.reason],
    );
    await publishAll(tx, order.id, decision.publish);
    return "applied";
  });
}
