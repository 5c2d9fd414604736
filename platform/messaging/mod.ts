/**
 * Messaging: one {@linkcode Publisher}/{@linkcode Subscriber} contract with in-memory, NATS Core, NATS JetStream and
 * Kafka adapters, context propagation through message headers, and the universal conformance suite in
 * `testing/conformance.ts`.
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
export * from "./memory.ts";
export * from "./nats.ts";
export * from "./jetstream.ts";
export * from "./kafka.ts";
export * from "./context_propagation.ts";
export * from "../async/backoff.ts";
export * from "./limiter.ts";
export * from "./schema.ts";
export * from "./schema_registry.ts";
export * from "./schema_compat.ts";
export * from "./schema_snapshot.ts";
export * from "./middleware/mod.ts";
