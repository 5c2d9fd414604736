/**
 * Test kit for messaging adapters: the conformance suite every {@linkcode PubSub} adapter passes
 * ({@linkcode testPubSubConformance}), the cases every Kafka adapter passes, a consumer in a child process that a
 * test can kill, and private brokers to stop and restart.
 *
 * @example Run the conformance suite against an adapter of your own
 * ```ts ignore
 * import { createMemoryBroker } from "@trellis/platform/messaging";
 * import { testPubSubConformance } from "@trellis/platform/messaging/testing";
 * testPubSubConformance("memory", async () => {
 *   const bus = createMemoryBroker();
 *   return { publisher: bus, subscriber: bus };
 * }, createMemoryBroker().features);
 * ```
 * @module
 */
export * from "./conformance.ts";
export * from "./consumer_process.ts";
export * from "./infra_broker.ts";
export * from "./kafka_cases.ts";
