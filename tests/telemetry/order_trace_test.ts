import assert from "node:assert/strict";
import { TextLineStream, within } from "@trellis/platform/testing";
import { startTraceReceiver } from "@trellis/platform/telemetry/receiver";
import { startCluster } from "../support/cluster.ts";
import { freePorts } from "../support/ports.ts";
import { traceOneOrder } from "./order_trace.ts";

const root = new URL("../../", import.meta.url).pathname;

Deno.test("embedded mode: `deno task dev` starts a trace receiver, and one order's trace crosses every service over the in-memory buses", async () => {
  const storageDir = await Deno.makeTempDir({ prefix: "trellis-trace-" });
  const names = [
    "GATEWAY",
    "AUTH",
    "ORDERS",
    "ORDERS_GRPC",
    "INVENTORY",
    "INVENTORY_GRPC",
    "PAYMENTS",
    "PAYMENTS_GRPC",
  ];
  const ports = freePorts(names.length + 1);
  const env: Record<string, string> = Object.fromEntries(names.map((n, i) => [`${n}_PORT`, String(ports[i])]));
  env.NOTIFICATIONS_PORT = String(ports[names.length]);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "services/dev.ts"],
    cwd: root,
    // PGlite, not the DATABASE_URL the suite runs with: dev's databases there have fixed names, which another dev
    // process could share.
    env: {
      ...env,
      DATABASE_URL: "",
      TRACES_PORT: "0",
      STORAGE_DIR: storageDir,
      OTEL_BSP_SCHEDULE_DELAY: "100",
      LOG_LEVEL: "warn",
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const output: string[] = [];
  try {
    const lines = child.stderr.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream());
    const urls: Record<string, string> = {};
    const banner = (async () => {
      for await (const line of lines) {
        output.push(line);
        const m = /^\s+(\w+)\s+(http:\/\/\S+)$/.exec(line);
        if (m) urls[m[1]] = m[2].replace(/\/api\/traces$/, "");
        if (line.startsWith("Press Ctrl-C")) return;
      }
    })();
    await within(banner, 60_000, "dev to print its URLs");
    // Keep draining, so the child never blocks on a full pipe.
    const rest = (async () => {
      for await (const line of lines) output.push(line);
    })();
    assert.ok(urls.traces, `dev prints the receiver's URL:\n${output.join("\n")}`);
    const endpoints = { gateway: urls.gateway, auth: urls.auth };
    const shape = await traceOneOrder(endpoints, urls.traces, { events: "memory", jobs: "memory" });
    console.log(`embedded order trace: ${JSON.stringify(shape)}`);
    child.kill("SIGTERM");
    assert.equal((await within(child.status, 30_000, "dev to stop")).code, 0, output.join("\n"));
    await within(rest, 5_000, "dev's output to end");
  } catch (err) {
    console.error(output.join("\n"));
    // SIGTERM, which dev forwards to the system it runs; SIGKILL only if that does not end it.
    try {
      child.kill("SIGTERM");
    } catch { /* already exited */ }
    await within(child.status, 30_000, "dev to stop").catch(() => {
      child.kill("SIGKILL");
      return within(child.status, 10_000, "dev to die");
    });
    throw err;
  } finally {
    await Deno.remove(storageDir, { recursive: true });
  }
});

Deno.test("distributed mode: six traced processes export to the receiver, and one order's trace crosses gRPC, Kafka and NATS", async () => {
  await using receiver = startTraceReceiver();
  await using cluster = await startCluster({
    env: { OTEL_DENO: "true", OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: "100" },
  });
  try {
    const shape = await traceOneOrder(cluster.endpoints, receiver.url, { events: "kafka", jobs: "jetstream" });
    console.log(`distributed order trace: ${JSON.stringify(shape)}`);
  } catch (err) {
    for (const p of cluster.procs) console.error(`--- ${p.name} ---\n${await cluster.tail(p.name)}`);
    throw err;
  }
});
