import { loadConfig, type SystemConfig, withPorts } from "../../services/shared/config.ts";
import { embeddedInfra } from "../../services/shared/embedded.ts";
import type { Infra } from "../../services/shared/infra.ts";
import { startSystem, type System } from "../../services/system.ts";
import { freePorts } from "./ports.ts";

/** A system configuration with every port free and a fresh temporary storage dir; `env` as for `loadConfig`. */
export async function freeConfig(env: Record<string, string> = {}): Promise<SystemConfig> {
  const storageDir = await Deno.makeTempDir({ prefix: "trellis-test-" });
  const [gateway, auth, orders, ordersGrpc, inventory, inventoryGrpc, payments, paymentsGrpc, notifications] =
    freePorts(9);
  return withPorts({
    ...loadConfig(env),
    ports: { gateway, auth, orders, ordersGrpc, inventory, inventoryGrpc, payments, paymentsGrpc, notifications },
    authUrl: "",
    grpc: { orders: "", inventory: "", payments: "" },
    notificationsUrl: "",
    storageDir,
  });
}

/**
 * The whole system in this process, as `deno task dev` runs it, on free ports. `wrap` can decorate the embedded
 * infrastructure (to observe a database, say). Disposing stops it and removes its storage.
 */
export async function embeddedSystem(
  options: { env?: Record<string, string>; wrap?: (infra: Infra) => Infra } = {},
): Promise<
  { config: SystemConfig; system: System; endpoints: { gateway: string; auth: string } } & AsyncDisposable
> {
  const config = await freeConfig(options.env);
  const infra = embeddedInfra({ storageDir: config.storageDir });
  let system: System;
  try {
    system = await startSystem(config, options.wrap ? options.wrap(infra) : infra);
  } catch (err) {
    await Deno.remove(config.storageDir, { recursive: true });
    throw err;
  }
  return {
    config,
    system,
    endpoints: { gateway: system.services.gateway.url, auth: system.services.auth.url },
    async [Symbol.asyncDispose]() {
      await system.stop();
      await Deno.remove(config.storageDir, { recursive: true });
    },
  };
}
