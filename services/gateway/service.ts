import { fanOut, type Settled } from "@trellis/platform/async";
import { authenticate, requireScopes } from "@trellis/platform/auth";
import { currentContext } from "@trellis/platform/context";
import {
  chain,
  cors,
  createHttpClient,
  HttpError,
  HttpStatusError,
  idempotency,
  IDEMPOTENCY_MIGRATIONS,
  json,
  type Middleware,
  notFound,
  PostgresIdempotencyStore,
  principalKey,
  rateLimit,
  readJson,
  type RouteHandler,
  Router,
  TimeoutError,
  UnavailableError as HttpClientUnavailable,
} from "@trellis/platform/http";
import {
  type ClientInterceptor,
  clientMetrics,
  createGrpcClient,
  endUserToken,
  GrpcError,
  grpcToHttpStatus,
  NotFoundError,
  serviceTokens,
} from "@trellis/platform/grpc";
import type { Database, Queryable } from "@trellis/platform/db";
import { Service } from "@trellis/platform/service";
import { InventoryServiceService } from "../../proto/gen/trellis/inventory/v1/inventory.ts";
import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import { PaymentsServiceService } from "../../proto/gen/trellis/payments/v1/payments.ts";
import type { SystemConfig } from "../shared/config.ts";
import type { Infra } from "../shared/infra.ts";
import { isOrderId } from "../shared/ids.ts";
import { resilienceFor } from "../shared/resilience.ts";
import { jwksFor, verifierFor } from "../shared/wiring.ts";
import { parseOrderRequest } from "./order_request.ts";

/** Time the optional parts of a fan-out read may take before the answer goes out without them. */
const FAN_OUT_BUDGET_MS = 500;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;
/**
 * What an order id in a path may look like. Orders issues UUIDs; anything outside URL-unreserved ASCII cannot name
 * an order, and some of it (a NUL from `%00`) made the orders database fail, which surfaced as a 500.
 */

/**
 * The public API: authenticates every `/v1` request with a user token from auth, enforces scopes, and calls the
 * internal services over gRPC with service tokens, within the request's deadline.
 */
export function createGatewayService(config: SystemConfig, infra: Infra): Service {
  const corsOn = config.corsOrigins === "*" || config.corsOrigins.length > 0;
  const svc = new Service({
    name: "gateway",
    hostname: config.hostname,
    port: config.ports.gateway,
    // Outside authentication: a browser's preflight carries no credentials and must still be answered.
    middleware: corsOn
      ? [cors({
        origins: config.corsOrigins,
        headers: ["authorization", "content-type", "idempotency-key", "x-request-id"],
        exposeHeaders: [
          "x-request-id",
          "retry-after",
          "location",
          "ratelimit-limit",
          "ratelimit-remaining",
          "idempotent-replayed",
        ],
      })]
      : [],
  });
  // One retry budget for the whole service, a circuit breaker per target (auth included: keys and tokens).
  const { policyFor, fetchFor } = resilienceFor(svc);
  const authn = authenticate(verifierFor(config, jwksFor(svc, config), config.apiAudience));
  const tokens = (audience: string) =>
    serviceTokens({
      tokenUrl: `${config.authUrl}/oauth/token`,
      clientId: "gateway",
      clientSecret: config.clientSecrets.gateway,
      audience,
      fetch: fetchFor("auth"),
    });
  const client = <D extends Parameters<typeof createGrpcClient>[0]>(
    def: D,
    address: string,
    audience: string,
    interceptors: ClientInterceptor[] = [],
  ) =>
    createGrpcClient(def, address, {
      token: tokens(audience),
      timeoutMs: 5_000,
      idempotent: Object.keys(def).filter((m) => m.startsWith("get") || m.startsWith("list")) as (keyof D & string)[],
      interceptors: [clientMetrics(svc.registry), ...interceptors],
      policy: policyFor(audience),
    });
  // The user's own token travels beside the service token, so orders authorizes on the user too.
  const orders = client(OrdersServiceService, config.grpc.orders, "orders", [endUserToken()]);
  const inventory = client(InventoryServiceService, config.grpc.inventory, "inventory");
  const payments = client(PaymentsServiceService, config.grpc.payments, "payments");
  svc.onStop("grpc clients", () => {
    for (const c of [orders, inventory, payments]) c.close();
    return Promise.resolve();
  });
  const notifications = createHttpClient({
    baseUrl: config.notificationsUrl,
    token: tokens("notifications"),
    timeoutMs: 2_000,
    policy: policyFor("notifications"),
  });
  const customer = () => currentContext()!.principal!.sub;

  const router = new Router({ service: svc.name })
    .post(
      "/v1/orders",
      scoped("orders:write", async (req) => {
        const key = req.headers.get("idempotency-key") ?? "";
        if (key && !IDEMPOTENCY_KEY.test(key)) {
          throw new HttpError(400, "bad-idempotency-key", "Bad Idempotency-Key", {
            detail: "Idempotency-Key must be 1 to 128 visible ASCII characters",
          });
        }
        const body = parseOrderRequest(await readJson(req, { maxBytes: 64 * 1024 }));
        const order = await grpc(() =>
          orders.createOrder({
            customerId: customer(),
            items: body.items,
            paymentToken: body.paymentToken,
            idempotencyKey: key,
          })
        );
        return json(order, 202, { location: `/v1/orders/${order.id}` });
      }),
    )
    .get(
      "/v1/orders/:id",
      scoped("orders:read", async (_req, params) => {
        const id = orderId(params.id);
        // The order is the answer: its failure is the response's. Reservation and payment are extras with their own
        // budget (also sent as their gRPC deadline); past it or failed, they are named in `partial` and the call is
        // aborted, so a slow dependency costs this read at most FAN_OUT_BUDGET_MS.
        const extra = <T>(call: (options: { timeoutMs: number; signal: AbortSignal }) => Promise<T>) => ({
          budgetMs: FAN_OUT_BUDGET_MS,
          run: (signal: AbortSignal) => call({ timeoutMs: FAN_OUT_BUDGET_MS, signal }),
        });
        const { order, reservation, payment } = await fanOut({
          order: {
            run: (signal) => grpc(() => orders.getOrder({ id, customerId: customer() }, { signal })),
            required: true,
          },
          reservation: extra((options) => inventory.getReservation({ orderId: id }, options)),
          payment: extra((options) => payments.getPayment({ orderId: id }, options)),
        });
        const partial: string[] = [];
        const part = <T>(name: string, r: Settled<T>): T | null => {
          if (r.ok) return r.value;
          if (!(r.error instanceof NotFoundError)) partial.push(name);
          return null;
        };
        return json({
          ...order.value,
          reservation: part("reservation", reservation),
          payment: part("payment", payment),
          ...(partial.length > 0 ? { partial } : {}),
        });
      }),
    )
    .get(
      "/v1/orders/:id/receipt",
      scoped("orders:read", async (_req, params) => {
        const id = orderId(params.id);
        await grpc(() => orders.getOrder({ id, customerId: customer() }));
        try {
          return json(await notifications.requestJson("GET", `/receipts/${encodeURIComponent(id)}`));
        } catch (err) {
          if (err instanceof HttpStatusError && err.status === 404) throw notFound(`no receipt for order ${id} yet`);
          if (err instanceof GrpcError) throw upstream(err);
          const status = err instanceof HttpClientUnavailable ? 503 : err instanceof TimeoutError ? 504 : 502;
          throw new HttpError(status, "upstream", "Upstream failure", {
            detail: `the notifications service failed (${(err as Error).name})`,
            cause: err,
          });
        }
      }),
    )
    .get(
      "/v1/products",
      scoped("products:read", async () => {
        const { products } = await grpc(() => inventory.listProducts({ skus: [] }));
        return json({ products });
      }),
    );
  // Per user (the principal is known after authentication): a burst of `burst`, refilled at `perSec`.
  const limit = rateLimit({
    key: principalKey(),
    capacity: config.rateLimit.burst,
    refillPerSec: config.rateLimit.perSec,
  });
  // After authentication, so keys are per user. The keys live in the gateway's own database (PGlite when embedded),
  // so a retry that reaches another replica, or comes after a restart, is replayed; a key whose gateway died with
  // the request in flight is free again after `leaseMs`.
  let db: Database;
  svc.onStart("database", async () => {
    db = await infra.database("gateway", { with: [IDEMPOTENCY_MIGRATIONS] });
  });
  svc.check("database", (signal) => db.ping(signal));
  const keys: Queryable = { query: (text, params, options) => db.query(text, params, options) };
  const idempotent = idempotency(new PostgresIdempotencyStore(keys), {
    maxBodyBytes: 64 * 1024,
    ttlMs: config.idempotency.ttlMs,
    leaseMs: config.idempotency.leaseMs,
  });
  return svc.handle(chain(authn, limit, idempotent)(router.handler));
}

/** The order id of a path, or 404 for one no order can have, before it reaches the orders database. */
function orderId(id: string): string {
  if (!isOrderId(id)) throw notFound("no such order");
  return id;
}

/** A route that needs `scope`. */
function scoped(scope: string, handler: RouteHandler): RouteHandler {
  const mw: Middleware = requireScopes(scope);
  return (req, params) => mw((r) => handler(r, params))(req);
}

/** Runs a gRPC call (or a service-token fetch), turning its failure into the matching HTTP problem. */
async function grpc<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw err instanceof GrpcError ? upstream(err) : err;
  }
}

/** The HTTP problem for a failed internal call: the callee's 4xx reasons pass through, its 5xx do not. */
function upstream(err: GrpcError): HttpError {
  const status = grpcToHttpStatus(err.code);
  const mapped = status === 400 ? 422 : status;
  return new HttpError(
    mapped,
    mapped >= 500 ? "upstream" : "rejected",
    mapped >= 500 ? "Upstream failure" : "Rejected",
    {
      detail: mapped >= 500 ? `an internal service failed (${err.name})` : err.message,
      cause: err,
    },
  );
}
