import type { Database } from "@trellis/platform/db";
import { json, notFound, type Router } from "@trellis/platform/http";
import { outboxEntries, type RouteGuard } from "../shared/admin.ts";
import { isOrderId } from "../shared/ids.ts";
import * as queries from "./queries.ts";
import { getPayment } from "./store.ts";

/**
 * The payments service's read-only management route, behind `guard` (`adminGuard(...)`):
 * `GET /admin/payments/{orderId}`, the order's payment (`null` when none was recorded) and the saga replies
 * payments sent about it.
 */
export function paymentsAdminRoutes(router: Router, db: () => Database, guard: RouteGuard): Router {
  return router.get(
    "/admin/payments/:orderId",
    guard(async (_req, { orderId }) => {
      if (!isOrderId(orderId)) throw notFound(`no payment for order ${orderId}`);
      const payment = await getPayment(db(), orderId) ?? null;
      return json({ payment, history: outboxEntries(await queries.outboxHistory(db(), { key: orderId })) });
    }),
  );
}
