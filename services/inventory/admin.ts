import type { Database } from "@trellis/platform/db";
import { json, notFound, type Router } from "@trellis/platform/http";
import { outboxEntries, type RouteGuard } from "../shared/admin.ts";
import { isOrderId } from "../shared/ids.ts";
import * as queries from "./queries.ts";
import { getReservation } from "./store.ts";

/**
 * The inventory service's read-only management route, behind `guard` (`adminGuard(...)`):
 * `GET /admin/reservations/{orderId}`, the order's reservation (`null` when none was made) and the saga replies
 * inventory sent about it.
 */
export function inventoryAdminRoutes(router: Router, db: () => Database, guard: RouteGuard): Router {
  return router.get(
    "/admin/reservations/:orderId",
    guard(async (_req, { orderId }) => {
      if (!isOrderId(orderId)) throw notFound(`no reservation for order ${orderId}`);
      const reservation = await getReservation(db(), orderId) ?? null;
      return json({ reservation, history: outboxEntries(await queries.outboxHistory(db(), { key: orderId })) });
    }),
  );
}
