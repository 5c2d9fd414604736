import type { Database } from "../../platform/db/db.ts";
import { OUTBOX_MIGRATIONS } from "../../platform/outbox/outbox.ts";
import { NotFoundError } from "../../platform/grpc/errors.ts";
import { implement } from "../../platform/grpc/server.ts";
import { currentContext } from "../../platform/context/context.ts";
import { Service } from "../../platform/service/service.ts";
import { PaymentsServiceService } from "../../proto/gen/trellis/payments/v1/payments.ts";
import type { SystemConfig } from "../shared/config.ts";
import { decodeEvent, Topics } from "../shared/events.ts";
import type { Infra } from "../shared/infra.ts";
import { consume, grpcServer, jwksFor, relay, serviceTokenAuthorizer, verifierFor } from "../shared/wiring.ts";
import { type PaymentProvider, simulatedProvider } from "./provider.ts";
import { getPayment, recordCharge } from "./store.ts";

/**
 * The payments service: charges orders through a payment provider on commands from the order saga (a transient
 * provider failure throws, so the command is redelivered and retried with the same idempotency key), publishes the
 * outcome through its outbox, and serves payments over gRPC.
 */
export function createPaymentsService(
  config: SystemConfig,
  infra: Infra,
  provider: PaymentProvider = simulatedProvider(config.payments),
): Service {
  const svc = new Service({ name: "payments", hostname: config.hostname, port: config.ports.payments });
  let db: Database;
  svc.onStart("database", async () => {
    db = await infra.database("payments", { with: [OUTBOX_MIGRATIONS] });
  });
  svc.check("database", (signal) => db.ping(signal));
  relay(svc, () => db, () => infra.events());
  consume(svc, () => infra.events(), Topics.paymentCommands, async (msg) => {
    const cmd = decodeEvent(msg, ["payments.charge.v1"]);
    const result = await provider.charge(
      { idempotencyKey: cmd.orderId, amountCents: cmd.amountCents, token: cmd.paymentToken },
      currentContext()?.signal,
    );
    const outcome = await recordCharge(db, msg.id, cmd.orderId, cmd.amountCents, result);
    svc.log.info("charge handled", { orderId: cmd.orderId, ok: result.ok, outcome });
  }, { group: "payments" });
  const jwks = jwksFor(svc, config);
  grpcServer(svc, config.ports.paymentsGrpc, config.hostname, () => [
    implement(PaymentsServiceService, {
      getPayment: async (req) => {
        const p = await getPayment(db, req.orderId);
        if (!p) throw new NotFoundError(`no payment for order ${req.orderId}`);
        return p;
      },
    }),
  ], serviceTokenAuthorizer(verifierFor(config, jwks, "payments")));
  return svc;
}
