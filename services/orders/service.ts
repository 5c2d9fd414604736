import { type Database, databaseMetrics } from "@trellis/platform/db";
import { OUTBOX_MIGRATIONS, relayFor } from "@trellis/platform/outbox";
import { checkBus, deadLetterAdmin, MessageRouter } from "@trellis/platform/messaging";
import {
  clientMetrics,
  createGrpcClient,
  implement,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  serviceTokens,
} from "@trellis/platform/grpc";
import type { Principal } from "@trellis/platform/context";
import { Router } from "@trellis/platform/http";
import { Service } from "@trellis/platform/service";
import { InventoryServiceService } from "../../proto/gen/trellis/inventory/v1/inventory.ts";
import { type Order as OrderMessage, OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import type { SystemConfig } from "../shared/config.ts";
import { decodeEvent, Notices, Topics } from "../shared/events.ts";
import type { Infra } from "../shared/infra.ts";
import { isOrderId } from "../shared/ids.ts";
import { resilienceFor } from "../shared/resilience.ts";
import { jwksFor, serveInternalGrpc, verifierFor } from "../shared/wiring.ts";
import { adminGuard } from "../shared/admin.ts";
import { ordersAdminRoutes } from "./admin.ts";
import { applyReply, createOrder, getOrder, type StoredOrder } from "./store.ts";
import { ordersChecks, ordersPeers } from "./reconcile.ts";
import { reconcileService } from "../shared/reconcile.ts";
import { startDeadlineSweeper } from "./sweeper.ts";
import { sagaMetrics } from "./metrics.ts";

const REPLY_TYPES = [
  "inventory.reserved.v1",
  "inventory.rejected.v1",
  "inventory.released.v1",
  "payments.succeeded.v1",
  "payments.failed.v1",
  "payments.refunded.v1",
  "payments.voided.v1",
] as const;

/**
 * The orders service: accepts orders over gRPC (pricing them from inventory), stores each with its saga's first
 * messages in one transaction, and drives the saga from inventory and payment replies to CONFIRMED or CANCELLED. An
 * order still PENDING at its deadline (`ORDER_DEADLINE_MS`) is cancelled and compensated by a sweep every
 * `ORDER_SWEEP_MS`.
 */
export function createOrdersService(config: SystemConfig, infra: Infra): Service {
  const svc = new Service({ name: "orders", hostname: config.hostname, port: config.ports.orders });
  let db: Database;
  svc.onStart("database", async () => {
    db = databaseMetrics(svc.registry, await infra.database("orders", { with: [OUTBOX_MIGRATIONS] }));
  });
  svc.check("database", (signal) => db.ping(signal));
  const sagas = sagaMetrics(svc, () => db);
  svc.onStart("deadline sweeper", () => {
    const sweeper = startDeadlineSweeper(db, {
      intervalMs: config.orders.sweepMs,
      logger: svc.logger,
      onExpired: (e) => sagas.expired(e),
    });
    svc.onStop("deadline sweeper", () => sweeper.stop());
    return Promise.resolve();
  });
  checkBus(svc, "jobs", () => infra.jobs());
  // A receipt is owed to the customer: its notice goes on the durable jobs bus, everything else is a saga event.
  relayFor(svc, () => db, (topic) => topic === Notices.orderConfirmed ? infra.jobs() : infra.events());
  const saga = new MessageRouter({ bus: () => infra.events(), logger: svc.logger });
  for (const topic of [Topics.inventoryEvents, Topics.paymentEvents]) {
    saga.subscribe(topic, async (msg) => {
      const event = decodeEvent(msg, REPLY_TYPES);
      const outcome = await applyReply(db, msg.id, event, sagas.applied);
      svc.logger.info("saga step", { type: event.type, orderId: event.orderId, outcome });
    }, { group: `orders-saga.${topic}` });
  }
  saga.attach(svc, { check: "events" });
  // One retry budget for the whole service, a circuit breaker per target (auth included: keys and tokens).
  const { policyFor, fetchFor } = resilienceFor(svc);
  const inventory = createGrpcClient(InventoryServiceService, config.grpc.inventory, {
    token: serviceTokens({
      tokenUrl: `${config.authUrl}/oauth/token`,
      clientId: "orders",
      clientSecret: config.clientSecrets.orders,
      audience: "inventory",
      fetch: fetchFor("auth"),
    }),
    idempotent: ["listProducts", "getReservation"],
    timeoutMs: 2_000,
    interceptors: [clientMetrics(svc.registry)],
    policy: policyFor("inventory"),
  });
  svc.onStop("inventory client", () => Promise.resolve(inventory.close()));
  const jwks = jwksFor(svc, config);
  const admin = ordersAdminRoutes(new Router({ service: svc.name }), () => db, adminGuard(config, jwks, "orders"));
  reconcileService(svc, config, jwks, admin, ordersChecks(() => db, ordersPeers(svc, config, inventory)));
  svc.handle(
    deadLetterAdmin({
      verifier: verifierFor(config, jwks, "orders"),
      sources: [Topics.inventoryEvents, Topics.paymentEvents].map((t) => ({
        topic: `${t}.dlq`,
        bus: () => infra.events(),
      })),
    })(admin.handler),
  );
  serveInternalGrpc(svc, config, jwks, {
    port: config.ports.ordersGrpc,
    audience: "orders",
    endUsers: verifierFor(config, jwks, config.apiAudience),
    services: [implement(OrdersServiceService, {
      createOrder: async (req, ctx) => {
        req.customerId = actingCustomer(req.customerId, ctx.endUser);
        if (!req.customerId) throw new InvalidArgumentError("customer_id is required");
        if (req.items.length === 0) throw new InvalidArgumentError("an order needs at least one item");
        if (req.items.some((i) => !(i.quantity > 0))) throw new InvalidArgumentError("quantities must be positive");
        const skus = [...new Set(req.items.map((i) => i.sku))];
        const { products } = await inventory.listProducts({ skus });
        const price = new Map(products.map((p) => [p.sku, p.priceCents]));
        const unknown = skus.filter((s) => !price.has(s));
        if (unknown.length > 0) throw new InvalidArgumentError(`unknown product: ${unknown.join(", ")}`);
        const totalCents = req.items.reduce((sum, i) => sum + price.get(i.sku)! * i.quantity, 0);
        const { order, created } = await createOrder(db, {
          customerId: req.customerId,
          items: req.items.map((i) => ({ sku: i.sku, quantity: i.quantity })),
          totalCents,
          paymentToken: req.paymentToken || "tok_visa",
          idempotencyKey: req.idempotencyKey || undefined,
          deadlineMs: config.orders.deadlineMs,
        });
        if (created) sagas.started();
        return toMessage(order);
      },
      getOrder: async (req, ctx) => {
        req.customerId = actingCustomer(req.customerId, ctx.endUser);
        // Order ids are UUIDs; anything else (a NUL byte, say, which Postgres refuses in text) cannot exist.
        if (!isOrderId(req.id)) throw new NotFoundError("order not found");
        const order = await getOrder(db, req.id);
        if (!order || (req.customerId && order.customerId !== req.customerId)) {
          throw new NotFoundError(`order ${req.id} not found`);
        }
        return toMessage(order);
      },
    })],
  });
  return svc;
}

/**
 * The customer a call acts for: the verified end user when the caller sent one (a different `customer_id` is then
 * refused), else the `customer_id` a trusted internal caller named.
 */
function actingCustomer(customerId: string, endUser: Principal | undefined): string {
  if (!endUser) return customerId;
  if (customerId && customerId !== endUser.sub) {
    throw new PermissionDeniedError("customer_id does not match the end user of this call");
  }
  return endUser.sub;
}

function toMessage(o: StoredOrder): OrderMessage {
  return {
    id: o.id,
    customerId: o.customerId,
    items: o.items,
    status: o.status,
    totalCents: o.totalCents,
    reason: o.reason,
    createdAt: o.createdAt,
    updatedAt: o.updatedAt,
  };
}
