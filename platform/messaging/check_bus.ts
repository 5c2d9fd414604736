import type { Service } from "../service/mod.ts";
import type { PubSub } from "./message.ts";

/**
 * A readiness check named `name` on a bus the service publishes to or consumes from: it gets the bus (connecting on
 * first use) and pings its broker (`PubSub.ping`), so `/readyz` names the bus while its broker does not answer and
 * turns ready again by itself once it does. A bus without `ping` counts as ready once connected.
 *
 * @example The buses of a service that consumes events and publishes jobs
 * ```ts ignore
 * checkBus(svc, "events", () => infra.events());
 * checkBus(svc, "jobs", () => infra.jobs());
 * ```
 */
export function checkBus(svc: Service, name: string, bus: () => Promise<PubSub>): void {
  svc.check(name, async (signal) => {
    await (await bus()).ping?.(signal);
  });
}
