import { type Database, databaseMetrics } from "@trellis/platform/db";
import { OUTBOX_MIGRATIONS, relayFor } from "@trellis/platform/outbox";
import { deadLetterAdmin, MessageRouter } from "@trellis/platform/messaging";
import { implement, NotFoundError } from "@trellis/platform/grpc";
import { currentContext } from "@trellis/platform/context";
import { Router } from "@trellis/platform/http";
import { Service } from "@trellis/platform/service";
import { adminGuard } from "../shared/admin.ts";
import { paymentsAdminRoutes } from "./admin.ts";
import { PaymentsServiceService } from "../../proto/gen/trellis/payments/v1/payments.ts";
import type { SystemConfig } from "../shared/config.ts";
import { decodeEvent, Topics } from "../shared/events.ts";
import type { Infra } from "../shared/infra.ts";
import { jwksFor, serveInternalGrpc, verifierFor } from "../shared/wiring.ts";
import { type PaymentProvider, simulatedProvider } from "./provider.ts";
import { handleCharge, handleRefund } from "./commands.ts";
import { getPayment } from "./store.ts";
import { paymentsChecks } from "./reconcile.ts";
import { ordersLookup, reconcileService } from "../shared/reconcile.ts";

/**
 * The payments service: charges orders through a payment provider on commands from the order saga (a transient
 * provider failure throws, so the command is redelivered and retried with the same idempotency key), refunds or voids
 * the payment of a cancelled order, publishes the outcome through its outbox, and serves payments over gRPC.
 */
export function createPaymentsService(
  config: SystemConfig,
  infra: Infra,
  provider: PaymentProvider = simulatedProvider({
    ...config.payments,
    ledgerPath: `${config.storageDir}/payment-provider-ledger.jsonl`,
  }),
): Service {
  const svc = new Service({ name: "payments", hostname: config.hostname, port: config.ports.payments });
  let db: Database;
  svc.onStart("database", async () => {
    db = databaseMetrics(svc.registry, await infra.database("payments", { with: [OUTBOX_MIGRATIONS] }));
  });
  svc.check("database", (signal) => db.ping(signal));
  relayFor(svc, () => db, () => infra.events());
  new MessageRouter({ bus: () => infra.events(), logger: svc.logger })
    .subscribe(Topics.paymentCommands, async (msg) => {
      const cmd = decodeEvent(msg, ["payments.charge.v1", "payments.refund.v1"]);
      const signal = currentContext()?.signal;
      const outcome = cmd.type === "payments.charge.v1"
        ? await handleCharge(db, provider, msg.id, cmd, signal)
        : await handleRefund(db, provider, msg.id, cmd, signal);
      svc.logger.info("command handled", { type: cmd.type, orderId: cmd.orderId, outcome });
    }, { group: "payments" })
    .attach(svc, { check: "events" });
  const jwks = jwksFor(svc, config);
  const admin = paymentsAdminRoutes(new Router({ service: svc.name }), () => db, adminGuard(config, jwks, "payments"));
  reconcileService(svc, config, jwks, admin, paymentsChecks(() => db, provider, ordersLookup(svc, config, "payments")));
  svc.handle(
    deadLetterAdmin({
      verifier: verifierFor(config, jwks, "payments"),
      sources: [{ topic: `${Topics.paymentCommands}.dlq`, bus: () => infra.events() }],
    })(admin.handler),
  );
  serveInternalGrpc(svc, config, jwks, {
    port: config.ports.paymentsGrpc,
    audience: "payments",
    services: [implement(PaymentsServiceService, {
      getPayment: async (req) => {
        const p = await getPayment(db, req.orderId);
        if (!p) throw new NotFoundError(`no payment for order ${req.orderId}`);
        return {
          orderId: p.orderId,
          status: p.status,
          amountCents: p.amountCents,
          providerRef: p.providerRef,
          reason: p.reason,
        };
      },
    })],
  });
  return svc;
}
