/**
 * `deno run -A scripts/bench_kafka_clients.ts`: kafkajs against `@platformatic/kafka`, each raw and through its
 * adapter (`createKafkaPubSub`, `createPlatformaticKafkaPubSub`), on the same broker in the same run: the evidence
 * for "Choosing the Kafka client" in README.md.
 *
 * Every variant runs the same workload on a fresh 3-partition topic and a fresh group: `--messages` payloads of 256
 * bytes, keys `k0`..`k99`, one send per message with `acks: -1`, at most `--window` sends unconfirmed at once, while
 * one subscription consumes them (3 partitions concurrently; session 10 s, heartbeat 500 ms, fetch wait 100 ms, the
 * adapters' defaults). The first 8 bytes of each payload carry `performance.now()` at publish, read by the consumer
 * for the end-to-end latency. Before the clock starts, one message goes through, so connections, group join and
 * offset lookups are not timed.
 *
 * - raw kafkajs: `eachMessage`, offsets auto-committed after the handler resolved (kafkajs's default);
 * - raw platformatic: `consume()` with `autocommit: false`, `message.commit()` after the handler, the library's
 *   default partitioner and retry settings;
 * - the adapters: `subscribe(..., { group, concurrency: 3 })` and `publish`.
 *
 * Throughput is messages / (first publish → last message consumed); "publish" is messages / (first publish → last
 * send confirmed); "send p99" is the 99th percentile of send → confirmation, the publishing part of the end-to-end
 * latency; CPU is this process's user+system time per 1000 messages (publisher and consumer share it). Each variant
 * runs once as a warm-up (a fifth of the messages), then the variants alternate for `--rounds` rounds, the order
 * reversed every other round; the table shows medians. Topics and groups the run made are deleted. Exits non-zero
 * when a run fails (no message consumed for 30 s, a broker error).
 *
 *   deno run -A scripts/bench_kafka_clients.ts [--messages 20000] [--rounds 3] [--window 256]
 *     [--only kafkajs,kafkajs adapter,platformatic,platformatic adapter]
 */
import { Buffer } from "node:buffer";
import process from "node:process";
import { Kafka, logLevel } from "kafkajs";
import { Consumer as PltConsumer, ProduceAcks, Producer as PltProducer, stringSerializer } from "@platformatic/kafka";
import { createLogger } from "@trellis/platform/log";
import { createKafkaPubSub, type KafkaPubSub } from "@trellis/platform/messaging";
import { createPlatformaticKafkaPubSub } from "@trellis/platform/messaging/kafka-platformatic";
import { rawKafkajs, type RawKafkajsRig } from "./raw_kafkajs.ts";
import { percentile, Recorder, WARM_UP } from "./recorder.ts";
import { loadavg, median } from "./wrk.ts";

const BROKERS = (Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(",");
const PAYLOAD_BYTES = 256;
const PARTITIONS = 3;
const KEYS = 100;
const CONSUMER = { sessionTimeout: 10_000, heartbeatInterval: 500, rebalanceTimeout: 10_000 };
const MAX_WAIT_MS = 100;

const VARIANTS = {
  "kafkajs": rawKafkajsRig,
  "kafkajs adapter": (topic: string, group: string, rec: Recorder) =>
    adapter(createKafkaPubSub({ brokers: BROKERS, clientId: "bench-kafkajs-adapter", logger }), topic, group, rec),
  "platformatic": rawPlatformatic,
  "platformatic adapter": (topic: string, group: string, rec: Recorder) =>
    adapter(
      createPlatformaticKafkaPubSub({ brokers: BROKERS, clientId: "bench-platformatic-adapter", logger }),
      topic,
      group,
      rec,
    ),
} satisfies Record<string, (topic: string, group: string, rec: Recorder) => Promise<Rig>>;
type Variant = keyof typeof VARIANTS;

const args = Deno.args;
const option = (name: string, dflt: number) => args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt;
const messages = option("--messages", 20_000);
const rounds = option("--rounds", 3);
const window = option("--window", 256);
const only = args.includes("--only") ? args[args.indexOf("--only") + 1].split(",") : Object.keys(VARIANTS);
if (
  ![messages, rounds, window].every((n) => Number.isInteger(n) && n >= 1) ||
  !only.every((v) => Object.hasOwn(VARIANTS, v))
) {
  console.error(
    "usage: deno run -A scripts/bench_kafka_clients.ts [--messages N] [--rounds N] [--window N]" +
      ` [--only ${Object.keys(VARIANTS).join("|")}[,...]]`,
  );
  Deno.exit(2);
}

/** Adapter warnings (handler failures, retries) go to stderr; stdout is the results. */
const logger = createLogger("bench-kafka-clients", { level: "warn", write: (line) => console.error(line) });

/** One timed run of one variant. */
interface RunResult {
  /** Messages consumed per second, first publish to last message consumed. */
  rate: number;
  /** Sends confirmed per second, first publish to last send confirmed. */
  publishRate: number;
  p50Ms: number;
  p99Ms: number;
  /** 99th percentile of send → broker confirmation, the publishing half of the end-to-end latency. */
  sendP99Ms: number;
  /** This process's CPU time (user + system) per 1000 messages. */
  cpuMsPerK: number;
}

/** A variant subscribed on a fresh topic: `publish` resolves once the broker confirmed the send. */
type Rig = RawKafkajsRig;

const runId = crypto.randomUUID().slice(0, 8);
const admin = new Kafka({ clientId: "bench-kafka-clients-admin", brokers: BROKERS, logLevel: logLevel.WARN }).admin();
await admin.connect();
const topics: string[] = [];
const groups: string[] = [];
const results = Object.fromEntries(Object.keys(VARIANTS).map((v) => [v, [] as RunResult[]])) as Record<
  Variant,
  RunResult[]
>;
const startedAt = performance.now();
const loadBefore = await loadavg();
try {
  const variants = only as Variant[];
  for (const variant of variants) await once(variant, Math.max(1, Math.floor(messages / 5)));
  for (let round = 1; round <= rounds; round++) {
    for (const variant of round % 2 === 1 ? variants : [...variants].reverse()) {
      const r = await once(variant, messages);
      results[variant].push(r);
      console.log(
        `round ${round} ${variant.padEnd(20)} ${r.rate.toFixed(0).padStart(6)} msg/s  publish ${
          r.publishRate.toFixed(0).padStart(6)
        } msg/s  p50 ${r.p50Ms.toFixed(1)} ms  p99 ${r.p99Ms.toFixed(1)} ms  send p99 ${
          r.sendP99Ms.toFixed(1)
        } ms  cpu ${r.cpuMsPerK.toFixed(0)} ms/1k`,
      );
    }
  }
} finally {
  await cleanUp().catch((err) => console.error(`could not delete the bench's topics and groups: ${err}`));
}
const loadAfter = await loadavg();

console.log(`\n${table()}\n`);
console.log(
  `${messages} messages x ${rounds} rounds, window ${window}; ${
    ((performance.now() - startedAt) / 1000).toFixed(0)
  } s;` +
    ` load average before ${loadBefore}, after ${loadAfter}`,
);

/** One run of `variant` with `n` messages on a fresh topic and group: subscribe, warm up, publish, wait, tear down. */
async function once(variant: Variant, n: number): Promise<RunResult> {
  const topic = `bench-kafka-clients.${runId}.${topics.length}`;
  const group = `${topic}.group`;
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }],
  });
  topics.push(topic);
  groups.push(group);
  const rec = new Recorder(n);
  const rig = await VARIANTS[variant](topic, group, rec);
  try {
    const warmUp = new Uint8Array(PAYLOAD_BYTES);
    new DataView(warmUp.buffer).setFloat64(0, WARM_UP, true);
    await rig.publish(warmUp, "k0");
    await rec.warm();

    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let next = 0;
    const sends = new Float64Array(n);
    const publisher = async () => {
      while (next < n) {
        const i = next++;
        const payload = new Uint8Array(PAYLOAD_BYTES);
        const sentAt = performance.now();
        new DataView(payload.buffer).setFloat64(0, sentAt, true);
        await rig.publish(payload, `k${i % KEYS}`);
        sends[i] = performance.now() - sentAt;
      }
    };
    const consumed = rec.done();
    await Promise.all(Array.from({ length: Math.min(window, n) }, publisher));
    const published = performance.now();
    const last = await consumed;
    const cpu = process.cpuUsage(cpu0);
    const sorted = rec.latencies.sort();
    return {
      rate: n / ((last - t0) / 1000),
      publishRate: n / ((published - t0) / 1000),
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      sendP99Ms: percentile(sends.sort(), 0.99),
      cpuMsPerK: (cpu.user + cpu.system) / 1000 / (n / 1000),
    };
  } finally {
    await rig.close();
  }
}

function rawKafkajsRig(topic: string, group: string, rec: Recorder): Promise<Rig> {
  return rawKafkajs({
    clientId: "bench-kafkajs-raw",
    brokers: BROKERS,
    topic,
    group,
    consumer: { ...CONSUMER, maxWaitTimeInMs: MAX_WAIT_MS },
    partitions: PARTITIONS,
    rec,
  });
}

async function rawPlatformatic(topic: string, group: string, rec: Recorder): Promise<Rig> {
  const consumer = new PltConsumer({
    clientId: "bench-platformatic-raw",
    bootstrapBrokers: BROKERS,
    groupId: group,
    ...CONSUMER,
    maxWaitTime: MAX_WAIT_MS,
  });
  const producer = new PltProducer({
    clientId: "bench-platformatic-raw",
    bootstrapBrokers: BROKERS,
    acks: ProduceAcks.ALL,
    serializers: { key: stringSerializer },
  });
  try {
    const stream = await consumer.consume({
      topics: [topic],
      mode: "committed",
      fallbackMode: "earliest",
      autocommit: false,
    });
    stream.on("data", (message) => {
      if (message.value) rec.record(message.value);
      (message.commit() as Promise<void>).catch((err) => console.error(`commit failed: ${err}`));
    });
    return {
      publish: (payload, key) =>
        producer.send({ messages: [{ topic, key, value: Buffer.from(payload.buffer, 0, payload.length) }] }),
      async close() {
        await stream.close();
        await consumer.close();
        await producer.close();
      },
    };
  } catch (err) {
    await Promise.allSettled([consumer.close(true), producer.close()]);
    throw err;
  }
}

async function adapter(bus: KafkaPubSub, topic: string, group: string, rec: Recorder): Promise<Rig> {
  try {
    const sub = await bus.subscribe(topic, (msg) => rec.record(msg.payload), { group, concurrency: PARTITIONS });
    return {
      publish: (payload, key) => bus.publish(topic, { key, payload }),
      async close() {
        await sub.close();
        await bus.close();
      },
    };
  } catch (err) {
    await bus.close();
    throw err;
  }
}

async function cleanUp(): Promise<void> {
  try {
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => {});
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
}

function table(): string {
  const rows = (only as Variant[]).map((variant) => {
    const rs = results[variant];
    const mid = (pick: (r: RunResult) => number) => median(rs.map(pick));
    return `| ${variant} | ${mid((r) => r.rate).toFixed(0)} | ${mid((r) => r.publishRate).toFixed(0)} | ${
      mid((r) => r.p50Ms).toFixed(1)
    } | ${mid((r) => r.p99Ms).toFixed(1)} | ${mid((r) => r.sendP99Ms).toFixed(1)} | ${
      mid((r) => r.cpuMsPerK).toFixed(0)
    } |`;
  });
  return [
    "| variant | msg/s end to end | publish msg/s | p50 ms | p99 ms | send p99 ms | CPU ms / 1k msgs |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
  ].join("\n");
}
