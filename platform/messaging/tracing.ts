import { activeTraceparent, currentService, inSpan, SpanKind, tracingEnabled } from "../telemetry/mod.ts";
import { ContextHeaders } from "../context/mod.ts";
import type { MessageHandler, PubSub } from "./message.ts";

/**
 * Traces a bus, whatever its adapter: each publish is a PRODUCER span `publish <topic>` whose `traceparent` replaces
 * the message's (so the consumer's span is its child), each delivery a CONSUMER span `process <topic>` continuing the
 * message's `traceparent`, attributed to the service in scope when `subscribe` was called (`withService`, as
 * `MessageRouter.attach` does). A request is a CLIENT span `request <topic>` lasting until the reply (or the error,
 * a timeout or no responder, recorded with status ERROR); the responder's `process <topic>` span is its child. Spans
 * carry `messaging.system` (`system`), `messaging.destination.name` and `messaging.message.id`; a failed publish or
 * handler sets status ERROR. With tracing off it returns `bus` itself.
 *
 * @example Trace an in-memory bus
 * ```ts
 * import { createMemoryBroker, tracePubSub } from "./mod.ts";
 * const bus = tracePubSub(createMemoryBroker(), "memory");
 * await bus.publish("orders.events", { payload: new TextEncoder().encode("{}") });
 * await bus.close();
 * ```
 */
export function tracePubSub(bus: PubSub, system: string): PubSub {
  if (!tracingEnabled) return bus;
  const attributes = (topic: string, id?: string) => ({
    "messaging.system": system,
    "messaging.destination.name": topic,
    ...(id ? { "messaging.message.id": id } : {}),
  });
  const traced: PubSub = {
    features: bus.features,
    ping: bus.ping && ((signal) => bus.ping!(signal)),
    request: bus.request &&
      ((topic, msg, options) =>
        inSpan(`request ${topic}`, { kind: SpanKind.CLIENT, attributes: attributes(topic, msg.id) }, () => {
          const traceparent = activeTraceparent()!;
          return bus.request!(
            topic,
            { ...msg, headers: { ...msg.headers, [ContextHeaders.traceparent]: traceparent } },
            options,
          );
        })),
    // Dead-letter operations read and remove stored letters: nothing to trace per message, so they pass straight on.
    deadLetters: bus.deadLetters,
    publish: (topic, msg) =>
      inSpan(`publish ${topic}`, { kind: SpanKind.PRODUCER, attributes: attributes(topic, msg.id) }, () => {
        const traceparent = activeTraceparent()!;
        return bus.publish(topic, { ...msg, headers: { ...msg.headers, [ContextHeaders.traceparent]: traceparent } });
      }),
    subscribe: (topic, handler, options) => {
      const service = currentService();
      const process: MessageHandler = (msg) =>
        inSpan(`process ${topic}`, {
          kind: SpanKind.CONSUMER,
          parent: msg.headers[ContextHeaders.traceparent] ?? "",
          service,
          attributes: { ...attributes(topic, msg.id), "messaging.message.delivery_attempt": msg.attempt },
        }, () => handler(msg));
      return bus.subscribe(topic, process, options);
    },
    close: () => bus.close(),
  };
  return traced;
}
