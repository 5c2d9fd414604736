import type { Service } from "@trellis/platform/service";
import { createAuthService } from "./auth/service.ts";
import { createGatewayService } from "./gateway/service.ts";
import { createInventoryService } from "./inventory/service.ts";
import { createNotificationsService } from "./notifications/service.ts";
import { createOrdersService } from "./orders/service.ts";
import { createPaymentsService } from "./payments/service.ts";
import type { SystemConfig } from "./shared/config.ts";
import type { Infra } from "./shared/infra.ts";

/** How each service is made from the system configuration and its infrastructure. */
export const SERVICES = {
  auth: createAuthService,
  inventory: createInventoryService,
  payments: createPaymentsService,
  orders: createOrdersService,
  notifications: createNotificationsService,
  gateway: createGatewayService,
} as const satisfies Record<string, (config: SystemConfig, infra: Infra) => Service>;

/** A service name. */
export type ServiceName = keyof typeof SERVICES;

/** The six services running in this process. */
export interface System {
  services: Record<ServiceName, Service>;
  /** Stops every service (gateway first, auth last), then the infrastructure; idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts all six services in one process: auth first (every other service needs its keys to become ready), then
 * the other five together.
 */
export async function startSystem(config: SystemConfig, infra: Infra): Promise<System> {
  const services = Object.fromEntries(
    Object.entries(SERVICES).map(([name, make]) => [name, make(config, infra)]),
  ) as Record<ServiceName, Service>;
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      await services.gateway.stop();
      await Promise.all([services.orders, services.notifications].map((s) => s.stop()));
      await Promise.all([services.inventory, services.payments].map((s) => s.stop()));
      await services.auth.stop();
      await infra.close();
    })();
  try {
    await services.auth.start();
    await Promise.all(Object.values(services).filter((s) => s !== services.auth).map((s) => s.start()));
  } catch (err) {
    await stop();
    throw err;
  }
  return { services, stop };
}
