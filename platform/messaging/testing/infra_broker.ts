import { type Component, startComponent } from "../../testing/mod.ts";

/**
 * A broker of a test's own (the chaos kit's {@linkcode Component}): stop, start, kill or pause it at will.
 *
 * @example Pause a private broker
 * ```ts ignore
 * import { type InfraBroker, startInfraBroker } from "./infra_broker.ts";
 * await using kafka: InfraBroker = await startInfraBroker("kafka");
 * await kafka.pause();
 * await kafka.resume();
 * ```
 */
export type InfraBroker = Component;

/**
 * Starts a private NATS (with JetStream) or Kafka broker through scripts/infra.sh, with its own
 * `TRELLIS_INFRA_DIR` and free ports, so it can be stopped and restarted without touching the shared instances.
 * Disposing stops it and removes its data. The messaging suites' name for `startComponent()` of
 * `platform/testing`.
 *
 * @example Restart a private NATS server
 * ```ts ignore
 * import { startInfraBroker } from "./infra_broker.ts";
 * await using nats = await startInfraBroker("nats");
 * console.log(`nats://127.0.0.1:${nats.port}`);
 * await nats.stop();
 * await nats.start();
 * ```
 */
export function startInfraBroker(component: "nats" | "kafka"): Promise<InfraBroker> {
  return startComponent(component);
}
