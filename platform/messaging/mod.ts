/**
 * Messaging: one {@linkcode Publisher}/{@linkcode Subscriber} contract with in-memory, NATS Core, NATS JetStream and
 * Kafka (kafkajs) adapters, context propagation through message headers, and the {@linkcode MessageRouter} that runs a
 * service's consumers (guards, middleware, drain) with {@linkcode checkBus} for readiness, and the dead-letter
 * operations ({@linkcode openDeadLetterQueue}: list, inspect, redrive, purge on the in-memory broker, JetStream and
 * Kafka) with their management endpoints ({@linkcode deadLetterAdmin}). Related packages have their own front
 * doors: `@trellis/platform/messaging/middleware` (consumer middleware and the dead-letter headers),
 * `@trellis/platform/messaging/schema` (the event schema language), `@trellis/platform/messaging/kafka-platformatic`
 * (the second Kafka client) and `@trellis/platform/messaging/testing` (the conformance suite).
 *
 * @example Pick an adapter by run mode
 * ```ts
 * import { createMemoryBroker, type PubSub } from "./mod.ts";
 * const bus: PubSub = createMemoryBroker();
 * await bus.publish("orders.events", { key: "o-1", payload: new TextEncoder().encode("{}") });
 * await bus.close();
 * ```
 * @module
 */
export * from "./message.ts";
export * from "./request_errors.ts";
export * from "./adapters/memory.ts";
export * from "./adapters/nats.ts";
export * from "./adapters/jetstream.ts";
export * from "./adapters/kafka/kafkajs.ts";
export * from "./context_propagation.ts";
export * from "./tracing.ts";
export * from "./limiter.ts";
export * from "./router.ts";
export * from "./check_bus.ts";
export * from "./dlq/dead_letter_store.ts";
export * from "./dlq/dead_letter_filter.ts";
export * from "./dlq/dead_letter_queue.ts";
export * from "./dlq/dead_letter_admin.ts";
export * from "./metrics.ts";
