import type { RemoteJwks } from "@trellis/platform/auth";
import { clientMetrics, createGrpcClient, NotFoundError, serviceTokens } from "@trellis/platform/grpc";
import { Group } from "@trellis/platform/async";
import type { Handler, Router } from "@trellis/platform/http";
import { type Check, reconcileEndpoints, type Reconciler, reconcilerFor } from "@trellis/platform/reconcile";
import type { Service } from "@trellis/platform/service";
import { adminGuard } from "./admin.ts";
import type { SystemConfig } from "./config.ts";
import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import { resilienceFor } from "./resilience.ts";

/** The scope an ops token needs for a service's reconciliation endpoints. */
export const RECONCILE_SCOPE = "ops:reconcile";

/**
 * Runs `checks` in `svc` (scheduled every `RECONCILE_INTERVAL_S`, repairing; 0 = on demand only) and serves them on
 * `router` as the management API: `POST /admin/reconcile` (`{"repair": boolean}` → report) and
 * `GET /admin/reconcile/last`, open only to a token addressed to the service (`aud` = its name) holding
 * `ops:reconcile` (the `ops` client's).
 */
export function reconcileService(
  svc: Service,
  config: SystemConfig,
  jwks: RemoteJwks,
  router: Router,
  // deno-lint-ignore no-explicit-any -- each check has its own drift type
  checks: readonly Check<any>[],
): Reconciler {
  const reconciler = reconcilerFor(svc, checks, { intervalMs: config.reconcileIntervalS * 1000 });
  const guard = adminGuard(config, jwks, svc.name, RECONCILE_SCOPE);
  const admin = (handler: Handler) => guard((req) => handler(req));
  const { run, last } = reconcileEndpoints(reconciler);
  router.post("/admin/reconcile", admin(run)).get("/admin/reconcile/last", admin(last));
  return reconciler;
}

/**
 * `fn` of each item, 8 at a time: a check asking another service about each of its rows. The first failure cancels
 * the rest and is thrown (the check then reports it as its error).
 */
export async function askEach<T, R>(
  list: readonly T[],
  signal: AbortSignal,
  fn: (item: T, signal: AbortSignal) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(list.length);
  const group = new Group({ limit: 8, signal });
  for (const [i, item] of list.entries()) {
    group.go(async (s) => {
      out[i] = await fn(item, s);
    });
  }
  await group.wait();
  return out;
}

/**
 * Where the last scan of a table stopped, so that runs page through every row of the window (`limit` at a time,
 * by `(updated_at, id)`) and start over after the last page, instead of looking at the same oldest rows each time.
 */
export class ScanCursor {
  /**
   * Where the last page ended, `[updated_at, id]`; unset to start from the beginning of the window. The time is the
   * database's own text (`updated_at::text`, bound back as `$n::text::timestamptz`): a `Date`, which the driver makes
   * of anything bound as a timestamp, would drop its microseconds and read rows twice.
   */
  #after: [string, string] | undefined;

  /**
   * Reads the next page of the window with `read` (a generated query taking {@linkcode ScanPage}) and records where it
   * ended, `key` giving a row's `[updated_at text, id]`: a short page means the end was reached, so the next scan
   * starts over.
   */
  async page<R>(
    window: Required<CheckWindow>,
    read: (page: ScanPage) => Promise<R[]>,
    key: (row: R) => [string, string],
  ): Promise<R[]> {
    const [afterAt, afterId] = this.#after ?? [null, null];
    const { graceMs, lookbackMs, limit } = window;
    const rows = await read({ graceMs, lookbackMs, limit, afterAt, afterId });
    this.#after = rows.length < limit ? undefined : key(rows[rows.length - 1]);
    return rows;
  }
}

/** The bounds of one page of a scan ({@linkcode ScanCursor.page}), as the generated queries take them. */
export interface ScanPage {
  graceMs: number;
  lookbackMs: number;
  limit: number;
  afterAt: string | null;
  afterId: string | null;
}

/** How far back and how many rows a check looks at, and how old a record must be before it counts as drift. */
export interface CheckWindow {
  /**
   * Records changed more recently than this (ms) are left alone: a saga in flight is briefly inconsistent by design.
   * @default {60000}
   */
  graceMs?: number;
  /** Records changed longer ago than this (ms) are not looked at again. @default {604800000} (7 days) */
  lookbackMs?: number;
  /** Most records one check looks at per run; the next run goes on from there (see {@linkcode ScanCursor}). @default {1000} */
  limit?: number;
}

/** `window` with its defaults. */
export function windowOf(window: CheckWindow = {}): Required<CheckWindow> {
  return { graceMs: 60_000, lookbackMs: 7 * 86_400_000, limit: 1000, ...window };
}

/** An order as the orders service reports it (gRPC `GetOrder`), or `undefined` when it does not know the id. */
export type OrderLookup = (
  orderId: string,
  signal: AbortSignal,
) => Promise<{ status: string; updatedAt: string } | undefined>;

/** `undefined` for a gRPC NOT_FOUND, else what `call` answered or threw. */
export async function unlessNotFound<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/**
 * Looks orders up in the orders service over gRPC, as the service client `clientId` (inventory and payments, whose
 * checks need to know whether the order a reservation or charge was made for still wants it). Closed at stop.
 */
export function ordersLookup(svc: Service, config: SystemConfig, clientId: "inventory" | "payments"): OrderLookup {
  const { policyFor, fetchFor } = resilienceFor(svc);
  const orders = createGrpcClient(OrdersServiceService, config.grpc.orders, {
    token: serviceTokens({
      tokenUrl: `${config.authUrl}/oauth/token`,
      clientId,
      clientSecret: config.clientSecrets[clientId],
      audience: "orders",
      fetch: fetchFor("auth"),
    }),
    idempotent: ["getOrder"],
    timeoutMs: 2_000,
    interceptors: [clientMetrics(svc.registry)],
    policy: policyFor("orders"),
  });
  svc.onStop("orders client", () => Promise.resolve(orders.close()));
  return (orderId, signal) => unlessNotFound(orders.getOrder({ id: orderId, customerId: "" }, { signal }));
}

/**
 * Whether the order a reservation or a charge was made for has ended without needing it: CANCELLED (for longer than
 * the grace period, so its own compensation had time to land) or unknown to the orders service.
 */
export async function endedOrder(
  order: OrderLookup,
  orderId: string,
  graceMs: number,
  signal: AbortSignal,
): Promise<string | undefined> {
  const o = await order(orderId, signal);
  if (!o) return "unknown to the orders service";
  if (o.status === "CANCELLED" && Date.now() - Date.parse(o.updatedAt) >= graceMs) return "CANCELLED";
  return undefined;
}

/**
 * The next page of a scan for rows kept for an order (a reservation, a charge) whose order has ended: reads the page
 * after `cursor` with `read`, moves the cursor on, asks the orders service about each row's order
 * ({@linkcode endedOrder}) and answers the rows whose order ended, each with how.
 */
export async function rowsOfEndedOrders<R extends { order_id: string; updated_at_text: string }>(
  read: (page: ScanPage) => Promise<R[]>,
  cursor: ScanCursor,
  window: Required<CheckWindow>,
  order: OrderLookup,
  signal: AbortSignal,
): Promise<{ row: R; ended: string }[]> {
  const rows = await cursor.page(window, read, (r) => [r.updated_at_text, r.order_id]);
  const seen = await askEach(rows, signal, async (row, s) => ({
    row,
    ended: await endedOrder(order, row.order_id, window.graceMs, s),
  }));
  return seen.flatMap(({ row, ended }) => ended ? [{ row, ended }] : []);
}
