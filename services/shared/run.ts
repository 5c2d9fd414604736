import { createLogger } from "@trellis/platform/log";
import { type Service, stopOnSignals } from "@trellis/platform/service";
import { loadConfig, type SystemConfig } from "./config.ts";
import { distributedInfra, distributedOptionsFromEnv } from "./distributed.ts";
import type { Infra } from "./infra.ts";

/**
 * Runs one service as its own process against the distributed infrastructure: configuration from the environment,
 * started in two phases, stopped on SIGTERM/SIGINT. A bad configuration or a failed start exits 1 with one line.
 */
export async function runDistributed(
  name: string,
  make: (config: SystemConfig, infra: Infra) => Service,
): Promise<void> {
  const env = Deno.env.toObject();
  const log = createLogger(name);
  let config: SystemConfig;
  try {
    config = loadConfig(env);
  } catch (err) {
    console.error(`${name}: ${(err as Error).message}`);
    Deno.exit(1);
  }
  const infra = distributedInfra(distributedOptionsFromEnv(env, name, log));
  const svc = make(config, infra);
  try {
    await svc.start();
  } catch (err) {
    console.error(`${name}: failed to start: ${(err as Error).message}`);
    await infra.close();
    Deno.exit(1);
  }
  stopOnSignals([svc], () => infra.close());
}
