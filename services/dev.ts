/**
 * `deno task dev`: the whole system in one process on embedded infrastructure (PGlite, in-memory messaging,
 * local-disk storage), each service on its own port. Set DATABASE_URL to use a real Postgres instead of PGlite.
 */
import { stopOnSignals } from "@trellis/platform/service";
import { loadConfig } from "./shared/config.ts";
import { embeddedInfra } from "./shared/embedded.ts";
import { startSystem } from "./system.ts";

const started = performance.now();
const env = Deno.env.toObject();
let config;
try {
  config = loadConfig(env);
} catch (err) {
  console.error(`dev: ${(err as Error).message}`);
  Deno.exit(1);
}
const infra = embeddedInfra({ storageDir: config.storageDir, databaseUrl: env.DATABASE_URL });
const system = await startSystem(config, infra).catch((err) => {
  console.error(`dev: failed to start: ${err instanceof Error ? err.message : err}`);
  Deno.exit(1);
});
const seconds = ((performance.now() - started) / 1000).toFixed(1);
const lines = Object.values(system.services).map((s) => `  ${s.name.padEnd(14)} ${s.url}`);
console.error(
  [
    "",
    `Trellis is running (embedded mode, all six services ready in ${seconds} s):`,
    ...lines,
    "",
    `Try: curl -s -d grant_type=password -d username=alice -d password=wonderland ${system.services.auth.url}/oauth/token`,
    "Press Ctrl-C to stop.",
    "",
  ].join("\n"),
);
stopOnSignals([system]);
