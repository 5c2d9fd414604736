/**
 * The cost of platform/testing/netns.ts's forwarders: the same load directly on the host's loopback and across an
 * isolated namespace (two forwarder hops and a veth pair, no fault set), alternating, three rounds each, medians.
 *
 * - HTTP: wrk (1 thread, 20 connections) against a `Deno.serve` hello server in a child process, on the host vs
 *   inside the namespace behind an inbound forward.
 * - Postgres: pgbench (`select 1`, 10 connections, 1 thread) against the shared Postgres, from the host vs from
 *   inside the namespace through an outbound forward.
 *
 * Needs root, wrk and pgbench. Run: `deno run -A scripts/bench_netns.ts [seconds per run, default 5]`.
 */
import { isolate } from "../platform/testing/netns.ts";
import { median, run, wrk, WRK_DONE_LUA } from "./wrk.ts";

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
const pgbenchArgs = [
  "-n",
  "-f",
  sql,
  "-c",
  "10",
  "-j",
  "1",
  "-T",
  String(SECONDS),
  "-h",
  "127.0.0.1",
  "-U",
  "postgres",
];

const http = {
  direct: [] as number[],
  isolated: [] as number[],
  directP99: [] as number[],
  isolatedP99: [] as number[],
};
const pg = { direct: [] as number[], isolated: [] as number[], directMs: [] as number[], isolatedMs: [] as number[] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    const d = await wrk(`http://127.0.0.1:${directPort}/`, lua, SECONDS, 20);
    const i = await wrk(`http://127.0.0.1:${isolatedPort}/`, lua, SECONDS, 20);
    http.direct.push(d.rps), http.directP99.push(d.p99Ms), http.isolated.push(i.rps), http.isolatedP99.push(i.p99Ms);

    const pd = pgbenchFigures(await run("pgbench", [...pgbenchArgs, "postgres"]));
    const pi = net.spawn("pgbench", [...pgbenchArgs, "postgres"], { stdout: "piped", stderr: "piped" });
    const out = await pi.output();
    const pdi = pgbenchFigures(new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr));
    pg.direct.push(pd.tps),
      pg.directMs.push(pd.latencyMs),
      pg.isolated.push(pdi.tps),
      pg.isolatedMs.push(pdi.latencyMs);
    console.error(`round ${round + 1}/${ROUNDS} done`);
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

const fmt = (n: number) => n.toFixed(0);
console.log(`forwarder overhead (${ROUNDS} rounds of ${SECONDS} s, medians; ${Deno.args.length ? "" : "default "}run:
  deno run -A scripts/bench_netns.ts ${SECONDS})`);
console.log(
  `HTTP wrk -c20: direct ${fmt(median(http.direct))} req/s (p99 ${median(http.directP99).toFixed(2)} ms), ` +
    `through the namespace ${fmt(median(http.isolated))} req/s (p99 ${median(http.isolatedP99).toFixed(2)} ms): ` +
    `ratio ${(median(http.isolated) / median(http.direct)).toFixed(2)}`,
);
console.log(
  `Postgres pgbench select 1 -c10: direct ${fmt(median(pg.direct))} tps (mean ${median(pg.directMs).toFixed(2)} ms), ` +
    `through the namespace ${fmt(median(pg.isolated))} tps (mean ${median(pg.isolatedMs).toFixed(2)} ms): ` +
    `ratio ${(median(pg.isolated) / median(pg.direct)).toFixed(2)}`,
);
