/**
 * `deno task bench`: time from `POST /v1/orders` to `CONFIRMED`, p50/p95 over N orders (default 50), in embedded
 * mode (one process, PGlite, in-memory messaging) and distributed mode (six processes, Postgres, Kafka, NATS; needs
 * `deno task infra:up`). Orders are placed one after another; each is polled every 5 ms until it settles.
 *
 *   deno task bench [--orders 50] [--mode embedded|distributed|both]
 */
import { startCluster } from "../tests/support/cluster.ts";
import { embeddedSystem } from "../tests/support/system.ts";
import { ApiClient, type Endpoints } from "../tests/e2e/scenarios.ts";

const args = Deno.args;
const n = Number(args[args.indexOf("--orders") + 1] || 50);
const mode = args.includes("--mode") ? args[args.indexOf("--mode") + 1] : "both";
if (!Number.isInteger(n) || n < 1 || !["embedded", "distributed", "both"].includes(mode)) {
  console.error("usage: deno task bench [--orders N] [--mode embedded|distributed|both]");
  Deno.exit(2);
}

async function measure(endpoints: Endpoints): Promise<number[]> {
  const api = await ApiClient.login(endpoints);
  const times: number[] = [];
  for (let i = 0; i < n + 3; i++) {
    const start = performance.now();
    const res = await api.call("POST", "/v1/orders", { items: [{ sku: "tea-sencha", quantity: 1 }] });
    if (res.status !== 202) throw new Error(`POST answered ${res.status}: ${JSON.stringify(res.body)}`);
    while (true) {
      const got = await api.call("GET", `/v1/orders/${res.body.id}`);
      if (got.body.status === "CONFIRMED") break;
      if (got.body.status !== "PENDING") throw new Error(`order ended ${got.body.status}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    if (i >= 3) times.push(performance.now() - start); // the first three warm connections and caches
  }
  return times.sort((a, b) => a - b);
}

function report(name: string, t: number[]) {
  const q = (p: number) => t[Math.min(t.length - 1, Math.floor(p * t.length))].toFixed(1);
  console.log(`${name.padEnd(12)} orders=${t.length}  p50=${q(0.5)} ms  p95=${q(0.95)} ms  max=${q(1)} ms`);
}

if (mode !== "distributed") {
  Deno.env.set("LOG_LEVEL", "warn");
  await using env = await embeddedSystem();
  report("embedded", await measure(env.endpoints));
}
if (mode !== "embedded") {
  await using cluster = await startCluster({ env: { LOG_LEVEL: "warn" } });
  report("distributed", await measure(cluster.endpoints));
}
