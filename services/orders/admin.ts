import type { Database } from "@trellis/platform/db";
import { badRequest, json, notFound, type Router } from "@trellis/platform/http";
import { outboxEntries, type OutboxEntry, type RouteGuard } from "../shared/admin.ts";
import { isOrderId } from "../shared/ids.ts";
import * as queries from "./queries.ts";
import { getOrder, type StoredOrder } from "./store.ts";

/** An order whose saga is still PENDING past its deadline: the sweep has not reached it (or cannot). */
export interface StuckOrder {
  id: string;
  step: StoredOrder["step"];
  deadlineAt: string;
  /** Milliseconds since the deadline passed, on the database's clock. */
  overdueMs: number;
}

/** Orders PENDING past their deadline, most overdue first. */
export async function stuckOrders(db: Database, limit: number): Promise<StuckOrder[]> {
  const rows = await queries.stuckOrders(db, { limit });
  return rows.map((r) => ({
    id: r.id,
    step: r.step as StoredOrder["step"],
    deadlineAt: r.deadline_at.toISOString(),
    overdueMs: Number(r.overdue_ms),
  }));
}

/** What `GET /admin/orders/{id}` answers: the order as stored and the saga messages orders sent about it. */
export interface OrderAdminView {
  order: Omit<StoredOrder, "paymentToken">;
  history: OutboxEntry[];
}

/**
 * The orders service's read-only management routes, each behind `guard` (`adminGuard(...)`): `GET /admin/orders/{id}`
 * (the order, payment token left out, with its saga history) and `GET /admin/orders/stuck?limit=` (PENDING past the
 * deadline).
 */
export function ordersAdminRoutes(router: Router, db: () => Database, guard: RouteGuard): Router {
  return router
    .get(
      "/admin/orders/stuck",
      guard(async (req) => {
        const raw = new URL(req.url).searchParams.get("limit") ?? "100";
        const limit = Number(raw);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
          throw badRequest(`limit must be an integer from 1 to 1000, got ${JSON.stringify(raw)}`);
        }
        return json({ orders: await stuckOrders(db(), limit) });
      }),
    )
    .get(
      "/admin/orders/:id",
      guard(async (_req, { id }) => {
        if (!isOrderId(id)) throw notFound(`order ${id} not found`);
        const order = await getOrder(db(), id);
        if (!order) throw notFound(`order ${id} not found`);
        const { paymentToken: _token, ...shown } = order;
        const view: OrderAdminView = {
          order: shown,
          history: outboxEntries(await queries.outboxHistory(db(), { key: id })),
        };
        return json(view);
      }),
    );
}
