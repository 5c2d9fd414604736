import type { Database } from "@trellis/platform/db";
import { clientMetrics, createGrpcClient, serviceTokens } from "@trellis/platform/grpc";
import { createHttpClient } from "@trellis/platform/http";
import { type Check, defineCheck } from "@trellis/platform/reconcile";
import type { Service } from "@trellis/platform/service";
import { PaymentsServiceService } from "../../proto/gen/trellis/payments/v1/payments.ts";
import type { SystemConfig } from "../shared/config.ts";
import { type Item, Notices, publishEvent, Topics } from "../shared/events.ts";
import { askEach, type CheckWindow, ScanCursor, unlessNotFound, windowOf } from "../shared/reconcile.ts";
import { resilienceFor } from "../shared/resilience.ts";
import * as queries from "./queries.ts";
import { expire, type Order } from "./saga.ts";
import { orderFromRow } from "./store.ts";

/**
 * What the orders service's checks need to know from the other services, each through the read API that service
 * already serves (gRPC `GetReservation`, `GetPayment`, `GET /receipts/:id`); `undefined` when it has none.
 */
export interface OrdersPeers {
  reservation(orderId: string, signal: AbortSignal): Promise<{ status: string } | undefined>;
  payment(orderId: string, signal: AbortSignal): Promise<{ status: string } | undefined>;
  hasReceipt(orderId: string, signal: AbortSignal): Promise<boolean>;
}

/**
 * The peers as the orders service reaches them: inventory through its existing gRPC client, payments over gRPC and
 * notifications over HTTP with the orders service's own client token (both closed at stop).
 */
export function ordersPeers(
  svc: Service,
  config: SystemConfig,
  inventory: {
    getReservation(req: { orderId: string }, options: { signal: AbortSignal }): Promise<{ status: string }>;
  },
): OrdersPeers {
  const { policyFor, fetchFor } = resilienceFor(svc);
  const tokens = (audience: string) =>
    serviceTokens({
      tokenUrl: `${config.authUrl}/oauth/token`,
      clientId: "orders",
      clientSecret: config.clientSecrets.orders,
      audience,
      fetch: fetchFor("auth"),
    });
  const payments = createGrpcClient(PaymentsServiceService, config.grpc.payments, {
    token: tokens("payments"),
    idempotent: ["getPayment"],
    timeoutMs: 2_000,
    interceptors: [clientMetrics(svc.registry)],
    policy: policyFor("payments"),
  });
  svc.onStop("payments client", () => Promise.resolve(payments.close()));
  const notifications = createHttpClient({
    baseUrl: config.notificationsUrl,
    token: tokens("notifications"),
    timeoutMs: 2_000,
    policy: policyFor("notifications"),
  });
  return {
    reservation: (orderId, signal) => unlessNotFound(inventory.getReservation({ orderId }, { signal })),
    payment: (orderId, signal) => unlessNotFound(payments.getPayment({ orderId }, { signal })),
    async hasReceipt(orderId, signal) {
      const res = await notifications.request("GET", `/receipts/${encodeURIComponent(orderId)}`, { signal });
      await res.body?.cancel();
      if (res.status === 200) return true;
      if (res.status === 404) return false;
      throw new Error(`notifications answered ${res.status} for the receipt of order ${orderId}`);
    },
  };
}

/**
 * The orders service's reconciliation checks. Orders owns the saga, so it owns the repairs that finish or undo one:
 *
 * - `pending-past-deadline`: PENDING past its deadline (by `graceMs`: the deadline sweep normally gets there first).
 *   Repair: the sweep's own decision, the saga's `expire()` (CANCELLED, stock released, charge refunded or voided).
 * - `confirmed-without-reservation` / `confirmed-without-charge`: CONFIRMED, but inventory holds no reservation or
 *   payments no charge. Repair: the saga's command again (`inventory.reserve.v1`, `payments.charge.v1` with the
 *   order id as the provider's idempotency key); the reply finds the order DONE and changes nothing. A reservation or
 *   payment that exists in another state (RELEASED, REFUNDED…) is reported and fails its repair: which side is wrong
 *   needs a person.
 * - `confirmed-without-receipt`: CONFIRMED with no receipt. Repair: `order.confirmed` published again (the
 *   notifications service writes one receipt per order, so a second notice is harmless).
 *
 * Every repair locks the order and looks again, in one transaction with the outbox row it writes.
 */
export function ordersChecks(db: () => Database, peers: OrdersPeers, window: CheckWindow = {}): Check[] {
  const w = windowOf(window);
  // A page of the CONFIRMED orders last changed between lookbackMs and graceMs ago, after `cursor`.
  const settledConfirmed = (cursor: ScanCursor) =>
    cursor.page(w, (p) => queries.settledConfirmedOrders(db(), p), (r) => [r.updated_at_text, r.id]);
  const confirmedAgainstPeer = (
    name: string,
    what: "reservation" | "charge",
    expected: string,
    lookup: (orderId: string, signal: AbortSignal) => Promise<{ status: string } | undefined>,
    command: (order: Order) => Parameters<typeof publishEvent>[1],
  ) => {
    const cursor = new ScanCursor();
    return defineCheck({
      name,
      description: `CONFIRMED orders whose ${what} is missing or not ${expected}`,
      async find(signal) {
        const rows = await settledConfirmed(cursor);
        const seen = await askEach(rows, signal, async (r, s) => ({ r, peer: await lookup(r.id, s) }));
        return seen.filter(({ peer }) => peer?.status !== expected).map(({ r, peer }) => ({
          subject: r.id,
          detail: peer ? `CONFIRMED but its ${what} is ${peer.status}` : `CONFIRMED but it has no ${what}`,
        }));
      },
      async repair(drift, signal) {
        const peer = await lookup(drift.subject, signal);
        if (peer?.status === expected) return "skipped";
        if (peer) {
          throw new Error(
            `its ${what} is ${peer.status}, not ${expected}: an operator must decide (restore it, or cancel the order)`,
          );
        }
        return await db().transaction(async (tx) => {
          const row = await queries.lockOrderWithClock(tx, { id: drift.subject });
          if (row?.status !== "CONFIRMED") return "skipped";
          await publishEvent(tx, command(orderFromRow(row)));
          return "repaired";
        });
      },
    });
  };
  const receiptCursor = new ScanCursor();
  return [
    defineCheck({
      name: "pending-past-deadline",
      description: "orders still PENDING after their deadline",
      async find() {
        const rows = await queries.pendingPastDeadline(db(), { graceMs: w.graceMs, limit: w.limit });
        return rows.map((r) => ({
          subject: r.id,
          detail: `PENDING (${r.step}) ${Math.round(r.late_s)} s past its deadline`,
        }));
      },
      async repair(drift) {
        return await db().transaction(async (tx) => {
          const row = await queries.lockOrderWithClock(tx, { id: drift.subject });
          if (!row) return "skipped";
          const order = orderFromRow(row);
          const decision = expire(order, row.db_now);
          if (!decision.order) return "skipped";
          await queries.setOrderState(tx, {
            id: order.id,
            status: decision.order.status,
            step: decision.order.step,
            reason: decision.order.reason,
          });
          for (const o of decision.publish) {
            await publishEvent(tx, { topic: o.topic, key: order.id, payload: o.payload });
          }
          return "repaired";
        });
      },
    }),
    confirmedAgainstPeer(
      "confirmed-without-reservation",
      "reservation",
      "RESERVED",
      peers.reservation,
      (o) => ({
        topic: Topics.inventoryCommands,
        key: o.id,
        payload: { type: "inventory.reserve.v1", orderId: o.id, items: o.items },
      }),
    ),
    confirmedAgainstPeer(
      "confirmed-without-charge",
      "charge",
      "SUCCEEDED",
      peers.payment,
      (o) => ({
        topic: Topics.paymentCommands,
        key: o.id,
        payload: { type: "payments.charge.v1", orderId: o.id, amountCents: o.totalCents, paymentToken: o.paymentToken },
      }),
    ),
    defineCheck({
      name: "confirmed-without-receipt",
      description: "CONFIRMED orders with no receipt in the notifications service",
      async find(signal) {
        const rows = await settledConfirmed(receiptCursor);
        const seen = await askEach(rows, signal, async (r, s) => ({ r, has: await peers.hasReceipt(r.id, s) }));
        return seen.filter(({ has }) => !has).map(({ r }) => ({
          subject: r.id,
          detail: `CONFIRMED at ${r.updated_at.toISOString()} but no receipt was written`,
        }));
      },
      async repair(drift, signal) {
        if (await peers.hasReceipt(drift.subject, signal)) return "skipped";
        return await db().transaction(async (tx) => {
          const row = await queries.lockOrderWithClock(tx, { id: drift.subject });
          if (row?.status !== "CONFIRMED") return "skipped";
          await publishEvent(tx, {
            topic: Notices.orderConfirmed,
            key: row.id,
            payload: {
              type: "order.confirmed.v1",
              orderId: row.id,
              customerId: row.customer_id,
              items: row.items as Item[],
              totalCents: Number(row.total_cents),
              confirmedAt: row.updated_at.toISOString(),
            },
          });
          return "repaired";
        });
      },
    }),
  ];
}
