import { type Database, databaseMetrics } from "@trellis/platform/db";
import { OUTBOX_MIGRATIONS, relayFor } from "@trellis/platform/outbox";
import { deadLetterAdmin, MessageRouter } from "@trellis/platform/messaging";
import { implement, NotFoundError } from "@trellis/platform/grpc";
import { Router } from "@trellis/platform/http";
import { Service } from "@trellis/platform/service";
import { adminGuard } from "../shared/admin.ts";
import { inventoryAdminRoutes } from "./admin.ts";
import { InventoryServiceService } from "../../proto/gen/trellis/inventory/v1/inventory.ts";
import type { SystemConfig } from "../shared/config.ts";
import { decodeEvent, Topics } from "../shared/events.ts";
import type { Infra } from "../shared/infra.ts";
import { jwksFor, serveInternalGrpc, verifierFor } from "../shared/wiring.ts";
import { getReservation, listProducts, release, reserve } from "./store.ts";
import { inventoryChecks } from "./reconcile.ts";
import { ordersLookup, reconcileService } from "../shared/reconcile.ts";

/**
 * The inventory service: reserves and releases stock on commands from the order saga, replies with events through
 * its outbox, and serves the catalogue and reservations over gRPC to callers holding a service token.
 */
export function createInventoryService(config: SystemConfig, infra: Infra): Service {
  const svc = new Service({ name: "inventory", hostname: config.hostname, port: config.ports.inventory });
  let db: Database;
  svc.onStart("database", async () => {
    db = databaseMetrics(svc.registry, await infra.database("inventory", { with: [OUTBOX_MIGRATIONS] }));
  });
  svc.check("database", (signal) => db.ping(signal));
  relayFor(svc, () => db, () => infra.events());
  new MessageRouter({ bus: () => infra.events(), logger: svc.logger })
    .subscribe(Topics.inventoryCommands, async (msg) => {
      const cmd = decodeEvent(msg, ["inventory.reserve.v1", "inventory.release.v1"]);
      const outcome = cmd.type === "inventory.reserve.v1"
        ? await reserve(db, msg.id, cmd.orderId, cmd.items)
        : await release(db, msg.id, cmd.orderId);
      svc.logger.info("command handled", { type: cmd.type, orderId: cmd.orderId, outcome });
    }, { group: "inventory" })
    .attach(svc, { check: "events" });
  const jwks = jwksFor(svc, config);
  const admin = inventoryAdminRoutes(
    new Router({ service: svc.name }),
    () => db,
    adminGuard(config, jwks, "inventory"),
  );
  reconcileService(svc, config, jwks, admin, inventoryChecks(() => db, ordersLookup(svc, config, "inventory")));
  svc.handle(
    deadLetterAdmin({
      verifier: verifierFor(config, jwks, "inventory"),
      sources: [{ topic: `${Topics.inventoryCommands}.dlq`, bus: () => infra.events() }],
    })(admin.handler),
  );
  serveInternalGrpc(svc, config, jwks, {
    port: config.ports.inventoryGrpc,
    audience: "inventory",
    services: [implement(InventoryServiceService, {
      listProducts: async (req) => ({
        products: (await listProducts(db, req.skus)).map((p) => ({
          sku: p.sku,
          name: p.name,
          priceCents: p.priceCents,
          available: p.available,
        })),
      }),
      getReservation: async (req) => {
        const r = await getReservation(db, req.orderId);
        if (!r) throw new NotFoundError(`no reservation for order ${req.orderId}`);
        return r;
      },
    })],
  });
  return svc;
}
