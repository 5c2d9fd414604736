import { authenticate } from "@trellis/platform/auth";
import { chain, notFound, Router } from "@trellis/platform/http";
import { deadLetterAdmin, MessageRouter } from "@trellis/platform/messaging";
import { Service } from "@trellis/platform/service";
import type { SystemConfig } from "../shared/config.ts";
import { decodeEvent, Notices } from "../shared/events.ts";
import type { Infra } from "../shared/infra.ts";
import { isOrderId } from "../shared/ids.ts";
import { jwksFor, verifierFor } from "../shared/wiring.ts";

/** The storage key of an order's receipt. */
export function receiptKey(orderId: string): string {
  return `receipts/${orderId}.json`;
}

/**
 * The notifications service: on each `order.confirmed` notice writes a receipt to object storage; serves receipts to
 * callers holding a service token. The notices come on the durable jobs bus (a JetStream durable consumer when
 * distributed): those published while the service is down wait for it, and one may come twice, so a receipt that
 * already exists is left as it is (its `issuedAt` is when it was first written).
 */
export function createNotificationsService(config: SystemConfig, infra: Infra): Service {
  const svc = new Service({ name: "notifications", hostname: config.hostname, port: config.ports.notifications });
  const storage = infra.storage();
  const receipts = new MessageRouter({ bus: () => infra.jobs(), logger: svc.logger });
  receipts.subscribe(Notices.orderConfirmed, async (msg) => {
    const n = decodeEvent(msg, ["order.confirmed.v1"]);
    if (!isOrderId(n.orderId)) {
      throw new TypeError(`Cannot write a receipt for order id ${JSON.stringify(n.orderId)}`);
    }
    // One receipt per order, keyed by it: a redelivery (or a second relay of the notice) finds it written.
    if (await storage.get(receiptKey(n.orderId))) {
      svc.logger.info("receipt already written; duplicate notice skipped", {
        orderId: n.orderId,
        messageId: msg.id,
        attempt: msg.attempt,
      });
      return;
    }
    const receipt = {
      receiptId: `rcpt-${n.orderId}`,
      orderId: n.orderId,
      customerId: n.customerId,
      items: n.items,
      totalCents: n.totalCents,
      confirmedAt: n.confirmedAt,
      issuedAt: new Date().toISOString(),
    };
    await storage.put(receiptKey(n.orderId), new TextEncoder().encode(JSON.stringify(receipt, null, 2)), {
      contentType: "application/json",
    });
    svc.logger.info("receipt written", { orderId: n.orderId });
  }, { group: "notifications" });
  receipts.attach(svc, { check: "jobs" });
  const verifier = verifierFor(config, jwksFor(svc, config), "notifications");
  const dlq = deadLetterAdmin({
    verifier,
    sources: [{ topic: `${Notices.orderConfirmed}.dlq`, bus: () => infra.jobs() }],
  });
  const router = new Router({ service: svc.name }).get("/receipts/:orderId", async (_req, { orderId }) => {
    if (!isOrderId(orderId)) throw notFound(`no receipt for order ${orderId}`);
    const found = await storage.get(receiptKey(orderId));
    if (!found) throw notFound(`no receipt for order ${orderId}`);
    return new Response(found.body, { headers: { "content-type": found.info.contentType } });
  });
  return svc.handle(chain(dlq, authenticate(verifier))(router.handler));
}
