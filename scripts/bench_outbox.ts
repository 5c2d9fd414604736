/**
 * `deno task bench:outbox`: outbox latency, from the commit of the enqueuing transaction to the subscriber receiving
 * the message, p50/p99 at each rate (default 100 and 500 events/s), over the real Postgres (DATABASE_URL, a fresh
 * database dropped afterwards) and a real broker (`--broker kafka` on KAFKA_BROKERS, as the saga events travel, or
 * `nats` for NATS Core on NATS_URL; default both). Each event is one transaction holding only its `enqueue`, sent
 * open-loop at a constant rate (scripts/bench/open_loop.ts); the relay runs with its defaults in this process.
 *
 * The reference, measured in the same run at the same rate: the same message published straight to the broker (no
 * outbox), from the publish call to the subscriber receiving it.
 *
 *   deno task bench:outbox [--rates 100,500] [--seconds 10] [--broker kafka|nats|both]
 *                          [--batch-size N] [--concurrency N]   (relay options; unset: the relay's defaults)
 *                          [--backlog N]   (first: time to drain N rows committed before the relay starts)
 *                          [--rates ""]    (no rate steps)
 */
import { connectPostgres, ensureDatabase, migrate } from "@trellis/platform/db";
import { createLogger } from "@trellis/platform/log";
import { createKafkaPubSub, createNatsPubSub, type PubSub } from "@trellis/platform/messaging";
import { enqueue, OUTBOX_MIGRATIONS, startRelay } from "@trellis/platform/outbox";
import { waitUntil } from "@trellis/platform/testing";
import postgres from "postgres";
import { quantile, runOpenLoop } from "./bench/open_loop.ts";
import { cpuMs } from "./bench/proc.ts";
import { cpuModel, loadavg } from "./wrk.ts";

const args = Deno.args;
const value = (name: string, fallback: string) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const rates = value("--rates", "100,500").split(",").filter(Boolean).map(Number);
const seconds = Number(value("--seconds", "10"));
const backlog = Number(value("--backlog", "0"));
const brokerArg = value("--broker", "both");
const brokers = brokerArg === "both" ? ["kafka", "nats"] : [brokerArg];
const relayOptions = {
  ...(args.includes("--batch-size") ? { batchSize: Number(value("--batch-size", "")) } : {}),
  ...(args.includes("--concurrency") ? { concurrency: Number(value("--concurrency", "")) } : {}),
};
const problems = [
  !rates.every((r) => r > 0) && `--rates must be positive numbers: current value is ${value("--rates", "")}`,
  !(seconds > 0) && `--seconds must be positive: current value is ${seconds}`,
  !(Number.isInteger(backlog) && backlog >= 0) &&
  `--backlog must be a non-negative integer: current value is ${backlog}`,
  !brokers.every((b) => b === "kafka" || b === "nats") &&
  `--broker must be kafka, nats or both: current value is ${brokerArg}`,
].filter(Boolean);
if (problems.length > 0) {
  for (const p of problems) console.error(`bench:outbox: ${p}`);
  Deno.exit(2);
}

const logger = createLogger("bench-outbox", { level: "warn" });
const id = `bench_outbox_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
const base = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";
const url = new URL(base);
url.pathname = `/${id}`;

async function connectBus(broker: string): Promise<PubSub> {
  return broker === "kafka"
    ? createKafkaPubSub({
      brokers: (Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(","),
      clientId: id,
      logger,
    })
    : await createNatsPubSub({ servers: Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222", name: id, logger });
}

interface Figures {
  /** CPU time of this process (generator, relay and subscriber) per event, and its share of one core. */
  cpuPerEventMs: number;
  cpuShare: number;
  /** From each event's scheduled time to its `send` resolving (the commit, or the publish call): the producer side. */
  p99SendMs: number;
  sent: number;
  received: number;
  p50Ms: number;
  p99Ms: number;
}

/** Sends `rate`/s for `seconds` through `send` (which records its start time), and matches receipts by message id. */
async function measure(
  rate: number,
  received: Map<string, number>,
  send: (id: string) => Promise<number>,
): Promise<Figures> {
  received.clear();
  const started = new Map<string, number>();
  const cpu0 = await cpuMs(Deno.pid);
  const wall0 = performance.now();
  const sent = await runOpenLoop({
    ratePerSec: rate,
    durationMs: seconds * 1000,
    send: async () => {
      const msgId = crypto.randomUUID();
      started.set(msgId, await send(msgId));
      return true;
    },
  });
  // Count only this run's ids: a late probe or a message of the previous run may still arrive meanwhile.
  const arrived = () => {
    for (const msgId of started.keys()) if (!received.has(msgId)) return false;
    return true;
  };
  await waitUntil(arrived, 30_000, "every message to arrive", 50).catch(() => {});
  const cpu = await cpuMs(Deno.pid) - cpu0;
  const wall = performance.now() - wall0;
  const skip = Math.min(rate, Math.floor(started.size / 10)); // the first second warms the path
  const latencies = [...started].slice(skip).flatMap(([msgId, t]) => {
    const at = received.get(msgId);
    return at === undefined ? [] : [at - t];
  }).sort((a, b) => a - b);
  return {
    cpuPerEventMs: cpu / sent.length,
    cpuShare: cpu / wall,
    p99SendMs: quantile(sent.map((s) => s.latencyMs).sort((a, b) => a - b), 0.99),
    sent: sent.filter((s) => s.ok).length,
    received: [...started.keys()].filter((k) => received.has(k)).length,
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
  };
}

console.log(
  `bench:outbox cpu=${await cpuModel()} cores=${navigator.hardwareConcurrency} seconds=${seconds} database=${id} relay=${
    JSON.stringify(relayOptions)
  }`,
);
await ensureDatabase(url.href);
const db = connectPostgres(url.href, { applicationName: "bench-outbox" });
try {
  await migrate(db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
  const [{ fsync, sync }] = await db.query<{ fsync: string; sync: string }>(
    "select current_setting('fsync') as fsync, current_setting('synchronous_commit') as sync",
  );
  console.log(`postgres fsync=${fsync} synchronous_commit=${sync}`);
  for (const broker of brokers) {
    const bus = await connectBus(broker);
    const topic = `${id}.events`;
    const received = new Map<string, number>();
    try {
      if (broker === "kafka") {
        await (bus as ReturnType<typeof createKafkaPubSub>).ensureTopics([topic], { partitions: 3 });
      }
      const sub = await bus.subscribe(topic, (msg) => {
        received.set(msg.id, performance.now());
      }, { group: id });
      // The subscription may join its group after `subscribe` resolves: publish probes until one arrives.
      await waitUntil(
        async () => {
          await bus.publish(topic, { id: crypto.randomUUID(), payload: new Uint8Array([123, 125]) });
          return received.size > 0;
        },
        60_000,
        `the ${broker} subscription to receive`,
        500,
      );
      const payload = new TextEncoder().encode(JSON.stringify({ type: "bench.event.v1", n: 1 }));
      if (backlog > 0) {
        // Drain rate: `backlog` rows committed before the relay starts, then the time until the last is received.
        received.clear();
        const ids = Array.from({ length: backlog }, () => crypto.randomUUID());
        for (let n = 0; n < ids.length; n += 500) {
          await db.transaction(async (tx) => {
            for (const msgId of ids.slice(n, n + 500)) await enqueue(tx, { topic, id: msgId, key: msgId, payload });
          });
        }
        const t0 = performance.now();
        const drainer = await startRelay(db, {
          ...relayOptions,
          publish: ({ topic, ...m }) => bus.publish(topic, m),
          logger,
        });
        await waitUntil(() => ids.every((k) => received.has(k)), 120_000, "the backlog to drain", 20)
          .finally(() => drainer.stop());
        const seconds = (performance.now() - t0) / 1000;
        console.log(
          `${broker} drain of ${backlog} rows: ${seconds.toFixed(2)} s, ${(backlog / seconds).toFixed(0)} rows/s ` +
            `(relay ${JSON.stringify(relayOptions)}; load ${await loadavg()})`,
        );
      }
      const relay = await startRelay(db, {
        ...relayOptions,
        publish: ({ topic, ...m }) => bus.publish(topic, m),
        logger,
      });
      try {
        for (const rate of rates) {
          const outbox = await measure(rate, received, async (msgId) => {
            await db.transaction((tx) => enqueue(tx, { topic, id: msgId, key: msgId, payload }));
            return performance.now();
          });
          const outboxLoad = await loadavg();
          const direct = await measure(rate, received, async (msgId) => {
            const t = performance.now();
            await bus.publish(topic, { id: msgId, key: msgId, payload });
            return t;
          });
          const f = (x: Figures) =>
            `p50 ${x.p50Ms.toFixed(2)} ms p99 ${x.p99Ms.toFixed(2)} ms (${x.received}/${x.sent} received, ` +
            `scheduled→sent p99 ${x.p99SendMs.toFixed(1)} ms, CPU ${x.cpuPerEventMs.toFixed(2)} ms/event, ` +
            `${(x.cpuShare * 100).toFixed(0)}% of a core)`;
          console.log(
            `${broker} ${rate}/s: outbox commit→received ${f(outbox)} (load ${outboxLoad}); ` +
              `direct publish→received ${f(direct)} (load ${await loadavg()})`,
          );
        }
      } finally {
        await relay.stop();
        await sub.close();
      }
    } finally {
      await bus.close();
    }
  }
} finally {
  await db.close();
  const sql = postgres(base, { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop database if exists "${id}" with (force)`);
  await sql.end();
}
