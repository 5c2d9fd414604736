/**
 * The cost of platform/testing/netns.ts's forwarders: the same load directly on the host's loopback and across an
 * isolated namespace (two veth pairs and two forwarders: router namespace and host; no fault set), alternating,
 * three rounds each, medians.
 *
 * - HTTP: wrk (1 thread, 20 connections) against a `Deno.serve` hello server in a child process, on the host vs
 *   inside the namespace behind an inbound forward.
 * - Postgres: pgbench (`select 1`, 10 connections then 1, 1 thread) against the shared Postgres, from the host vs
 *   from inside the namespace through an outbound link.
 *
 * Needs root, wrk and pgbench. Run: `deno run -A scripts/bench_netns.ts [seconds per run, default 5]`.
 */
import { isolate } from "@trellis/platform/testing";
import { loadavg, median, run, wrk, WRK_DONE_LUA } from "./wrk.ts";

const SECONDS = Number(Deno.args[0] ?? 5);
const ROUNDS = 3;
const PG_PORT = 5432;

const server = (port: number) => [
  "eval",
  `Deno.serve({ hostname: "127.0.0.1", port: ${port}, onListen: () => console.log("listening") },
    () => new Response("hello"));`,
];

async function waitForLine(child: Deno.ChildProcess, expected: string): Promise<void> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  let text = "";
  while (!text.includes(expected)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Cannot start the server: it exited before printing ${expected}`);
    text += value;
  }
  clearTimeout(timer);
  reader.releaseLock();
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** pgbench's transactions per second (without connection time) and mean latency. */
function pgbenchFigures(out: string): { tps: number; latencyMs: number } {
  const tps = out.match(/tps = ([\d.]+) \(without initial connection time\)/)?.[1];
  const latency = out.match(/latency average = ([\d.]+) ms/)?.[1];
  if (!tps || !latency) throw new Error(`Cannot read pgbench's output:\n${out}`);
  return { tps: Number(tps), latencyMs: Number(latency) };
}

const directPort = freePort();
const isolatedPort = freePort();
await using net = await isolate({
  links: { postgres: { outbound: [PG_PORT] }, http: { inbound: [isolatedPort] } },
});
await using direct = new Deno.Command(Deno.execPath(), { args: server(directPort), stdout: "piped" }).spawn();
await using inside = net.spawn(Deno.execPath(), server(isolatedPort), { stdout: "piped" });
await Promise.all([waitForLine(direct, "listening"), waitForLine(inside, "listening")]);

const dir = await Deno.makeTempDir({ prefix: "bench-netns-" });
const lua = `${dir}/done.lua`;
const sql = `${dir}/select1.sql`;
await Deno.writeTextFile(lua, WRK_DONE_LUA);
await Deno.writeTextFile(sql, "select 1;\n");
const pgbenchArgs = (clients: number) =>
  ["-n", "-f", sql, "-c", String(clients), "-j", "1", "-T", String(SECONDS), "-h", "127.0.0.1", "-U", "postgres"]
    .concat("postgres");

/** pgbench on the host, or inside the namespace. */
async function pgbench(clients: number, inside: boolean): Promise<{ tps: number; latencyMs: number }> {
  if (!inside) return pgbenchFigures(await run("pgbench", pgbenchArgs(clients)));
  const out = await net.spawn("pgbench", pgbenchArgs(clients), { stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`pgbench inside the namespace exited ${out.code}:\n${text}`);
  return pgbenchFigures(text);
}

type Figures = Record<"direct" | "isolated", { rate: number[]; ms: number[] }>;
const figures = (): Figures => ({ direct: { rate: [], ms: [] }, isolated: { rate: [], ms: [] } });
const http = figures();
const pg10 = figures();
const pg1 = figures();
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const [side, port] of [["direct", directPort], ["isolated", isolatedPort]] as const) {
      const r = await wrk(`http://127.0.0.1:${port}/`, lua, SECONDS, 20);
      http[side].rate.push(r.rps), http[side].ms.push(r.p99Ms);
      for (const [clients, into] of [[10, pg10], [1, pg1]] as const) {
        const p = await pgbench(clients, side === "isolated");
        into[side].rate.push(p.tps), into[side].ms.push(p.latencyMs);
      }
    }
    console.error(`round ${round + 1}/${ROUNDS} done`);
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

const line = (what: string, f: Figures, unit: string, ms: string) => {
  const [d, i] = [f.direct, f.isolated].map((x) => ({ rate: median(x.rate), ms: median(x.ms) }));
  console.log(
    `${what}: direct ${d.rate.toFixed(0)} ${unit} (${ms} ${d.ms.toFixed(2)} ms), through the namespace ` +
      `${i.rate.toFixed(0)} ${unit} (${ms} ${i.ms.toFixed(2)} ms): ratio ${(i.rate / d.rate).toFixed(2)}`,
  );
};
console.log(`forwarder overhead (${ROUNDS} rounds of ${SECONDS} s, medians; run:
  deno run -A scripts/bench_netns.ts ${SECONDS}; load average ${await loadavg()}, ${navigator.hardwareConcurrency} cores)`);
line("HTTP wrk -c20", http, "req/s", "p99");
line("Postgres pgbench select 1 -c10", pg10, "tps", "mean");
line("Postgres pgbench select 1 -c1", pg1, "tps", "mean");
