/**
 * `deno task bench:footprint`: the system's footprint.
 *
 * - distributed: resident memory (VmRSS) and CPU burnt per second (/proc/<pid>/stat, over 10 s) of each of the six
 *   service processes, idle once all are ready, and RSS again idle 10 s after `--orders` orders went through (code
 *   paths loaded, pools and consumers busy once; 0 skips it);
 * - embedded: time from spawning `deno task dev` (services/dev.ts, PGlite, in-memory messaging) to all six services
 *   ready, `--starts` times (default 3; the first may compile, the later ones are warm), as measured from outside
 *   (spawn → the ready line on stderr) and as dev.ts reports it (its module start → ready); and its RSS once ready.
 *
 *   deno task bench:footprint [--mode distributed|embedded|both] [--starts 3] [--orders 50] [--postgres]
 *
 * `--postgres` starts embedded mode on DATABASE_URL's Postgres (databases trellis_dev_<service>) instead of PGlite.
 */
import { startCluster } from "../tests/support/cluster.ts";
import { clusterEnv } from "../tests/support/ports.ts";
import { ApiClient } from "../tests/e2e/scenarios.ts";
import { TextLineStream, within } from "@trellis/platform/testing";
import { cpuMs, processTree, rssMb } from "./bench/proc.ts";
import { cpuModel, loadavg, median } from "./wrk.ts";

const args = Deno.args;
const value = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const mode = value("--mode", "both");
const starts = Number(value("--starts", "3"));
const orders = Number(value("--orders", "50"));
const problems = [
  !["distributed", "embedded", "both"].includes(mode) &&
  `--mode must be distributed, embedded or both: current value is ${mode}`,
  !(Number.isInteger(starts) && starts >= 1) && `--starts must be a positive integer: current value is ${starts}`,
  !(Number.isInteger(orders) && orders >= 0) && `--orders must be a non-negative integer: current value is ${orders}`,
].filter(Boolean);
if (problems.length > 0) {
  for (const p of problems) console.error(`bench:footprint: ${p}`);
  Deno.exit(2);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rssLine = async (pids: { name: string; pid: number }[]) =>
  (await Promise.all(pids.map(async (p) => `${p.name}=${(await rssMb(p.pid)).toFixed(1)}`))).join(" ");

console.log(`bench:footprint cpu=${await cpuModel()} cores=${navigator.hardwareConcurrency}`);

if (mode !== "embedded") {
  await using cluster = await startCluster({ env: { LOG_LEVEL: "warn" } });
  const pids = cluster.procs.map((p) => ({ name: p.name, pid: p.child.pid }));
  await sleep(5_000);
  const cpu0 = await Promise.all(pids.map((p) => cpuMs(p.pid)));
  await sleep(10_000);
  const cpu1 = await Promise.all(pids.map((p) => cpuMs(p.pid)));
  console.log(
    `distributed idle CPU ms/s (over 10 s; KAFKA_FETCH_MAX_WAIT_MS=${
      Deno.env.get("KAFKA_FETCH_MAX_WAIT_MS") ?? ""
    }): ` +
      pids.map((p, i) => `${p.name}=${((cpu1[i] - cpu0[i]) / 10).toFixed(1)}`).join(" "),
  );
  console.log(`distributed idle RSS MB (15 s after ready; load ${await loadavg()}): ${await rssLine(pids)}`);
  if (orders > 0) {
    const api = await ApiClient.login(cluster.endpoints);
    const ids = [];
    for (let n = 0; n < orders; n++) ids.push((await api.placeOrder([{ sku: "tea-sencha", quantity: 1 }])).id);
    for (const id of ids) await api.settle(id, 120_000);
    await sleep(10_000);
    console.log(
      `distributed idle RSS MB (10 s after ${orders} orders; load ${await loadavg()}): ${await rssLine(pids)}`,
    );
  }
}

if (mode !== "distributed") {
  const root = new URL("../", import.meta.url).pathname;
  const outside: number[] = [];
  const inside: number[] = [];
  for (let n = 0; n < starts; n++) {
    const storageDir = await Deno.makeTempDir({ prefix: "trellis-footprint-" });
    const { env } = clusterEnv(storageDir, { LOG_LEVEL: "warn" });
    if (!args.includes("--postgres")) delete env.DATABASE_URL; // as `deno task dev` runs by default: PGlite
    const t0 = performance.now();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}services/dev.ts`],
      cwd: root,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      const lines = child.stderr.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream());
      const reported = await within(
        (async () => {
          for await (const line of lines) {
            const m = line.match(/all six services ready in ([\d.]+) s/);
            if (m) return Number(m[1]);
          }
          throw new Error("dev.ts ended without reporting ready");
        })(),
        120_000,
        "dev.ts to report all six services ready",
      );
      outside.push((performance.now() - t0) / 1000);
      inside.push(reported);
      await sleep(5_000);
      // Unless OTEL_DENO is set, dev.ts serves the trace receiver and runs the system in a child process: count both.
      const tree = await Promise.all((await processTree(child.pid)).map(rssMb));
      const rss = `${tree.reduce((a, b) => a + b, 0).toFixed(1)} MB (${tree.map((m) => m.toFixed(1)).join(" + ")})`;
      console.log(
        `embedded (${args.includes("--postgres") ? "Postgres" : "PGlite"}) start ${n + 1}: spawn→ready ${
          outside.at(-1)!.toFixed(2)
        } s, dev.ts reports ${reported} s, ` +
          `RSS 5 s after ready ${rss} (load ${await loadavg()})`,
      );
    } finally {
      child.kill("SIGTERM");
      await child.stderr.cancel().catch(() => {});
      await child.status;
      await Deno.remove(storageDir, { recursive: true });
    }
  }
  if (starts > 1) {
    console.log(
      `embedded warm starts (2..${starts}): median spawn→ready ${median(outside.slice(1)).toFixed(2)} s, ` +
        `dev.ts median ${median(inside.slice(1)).toFixed(1)} s`,
    );
  }
}
