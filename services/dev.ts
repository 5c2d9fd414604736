/**
 * `deno task dev`: the whole system in one process on embedded infrastructure (PGlite, in-memory messaging,
 * local-disk storage), each service on its own port. Set DATABASE_URL to use a real Postgres instead of PGlite.
 *
 * Tracing: Deno's OpenTelemetry must be on when a process starts, so unless `OTEL_DENO` is set this process starts a
 * trace receiver (on `TRACES_PORT`, default 4318, 0 for any; none when `OTEL_EXPORTER_OTLP_ENDPOINT` names another
 * collector) and runs the system in a child process with `OTEL_DENO=true` exporting to it. The receiver stays in this
 * process, which is not instrumented, so it does not trace its own exports. `OTEL_DENO=false` runs without tracing.
 */
import { stopOnSignals } from "@trellis/platform/service";
import { startTraceReceiver } from "@trellis/platform/telemetry/receiver";
import { loadConfig } from "./shared/config.ts";
import { embeddedInfra } from "./shared/embedded.ts";
import { startSystem } from "./system.ts";

const env = Deno.env.toObject();
if (env.OTEL_DENO === undefined) Deno.exit(await superviseTraced());

const started = performance.now();
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
if (env.TRELLIS_TRACES_URL) lines.push(`  ${"traces".padEnd(14)} ${env.TRELLIS_TRACES_URL}/api/traces`);
else if (env.OTEL_DENO === "true" && env.OTEL_EXPORTER_OTLP_ENDPOINT) {
  lines.push(`  ${"traces".padEnd(14)} exported to ${env.OTEL_EXPORTER_OTLP_ENDPOINT}`);
}
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
if (env.TRELLIS_DEV_PARENT) {
  // Run by the tracing parent below: a parent killed outright (SIGKILL) cannot stop us, so stop when it is gone.
  const orphaned = setInterval(() => {
    if (String(Deno.ppid) === env.TRELLIS_DEV_PARENT) return;
    clearInterval(orphaned);
    system.stop().finally(() => Deno.exit(1));
  }, 1_000);
  Deno.unrefTimer(orphaned);
}

/** Runs this script again with tracing on, exporting to a receiver started here; resolves the child's exit code. */
async function superviseTraced(): Promise<number> {
  const port = Number(env.TRACES_PORT ?? 4318);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`dev: Cannot use TRACES_PORT as a port: current value is ${env.TRACES_PORT}`);
    return 1;
  }
  let receiver;
  try {
    receiver = env.OTEL_EXPORTER_OTLP_ENDPOINT ? undefined : startTraceReceiver({ port, hostname: env.TRELLIS_HOST });
  } catch (err) {
    console.error(`dev: cannot start the trace receiver on port ${port}: ${(err as Error).message} (set TRACES_PORT)`);
    return 1;
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname],
    env: {
      OTEL_DENO: "true",
      OTEL_SERVICE_NAME: env.OTEL_SERVICE_NAME ?? "trellis-dev",
      TRELLIS_DEV_PARENT: String(Deno.pid),
      ...(receiver ? { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, TRELLIS_TRACES_URL: receiver.url } : {}),
    },
  }).spawn();
  // Ctrl-C reaches both processes; the child stops its services, this one waits for it, then stops the receiver.
  const forward = (signal: Deno.Signal) => () => {
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
  };
  const handlers = (["SIGINT", "SIGTERM"] as const).map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  const status = await child.status;
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  await receiver?.close();
  return status.code;
}
