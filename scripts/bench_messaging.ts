/**
 * `deno task bench:messaging`: publish+consume throughput and end-to-end latency through the messaging adapters
 * (`platform/messaging`) against the raw client libraries, on the same broker in the same run.
 *
 * For each broker (NATS Core, JetStream, Kafka) these variants run the same workload on a fresh topic/stream/group:
 *
 * - raw: the client library as a careful user would drive it with the same guarantees;
 * - envelope (NATS Core and Kafka only, a reference): raw plus the headers the adapter's envelope needs at the least
 *   (the message id; on NATS also the publish time), sent and read back, and nothing else of the adapter;
 * - adapter: `createNatsPubSub`, `createJetStreamPubSub`, `createKafkaPubSub`.
 *
 * Workload: `--messages` payloads of 256 bytes, published with a sliding window of `--window` unconfirmed publishes
 * while one subscription consumes them; publishers also wait while more than 4 windows of messages are unconsumed, so
 * the backlog stays bounded and the latency is the system's, not the run's length. The first 8 bytes of each payload carry `performance.now()` at publish, read
 * by the consumer for the end-to-end latency. Throughput is messages / (first publish → last message consumed).
 *
 * - NATS Core: one connection publishes and subscribes; a publish counts as confirmed once a flush covering it came
 *   back (raw: `nc.publish` plus one `flush()` shared by the publishes of a tick, which is what the adapter does);
 *   one message handled at a time (raw's loop, the adapter's default concurrency of 1).
 * - JetStream: a file stream with a 2 min duplicate window; publishes wait for their PubAck; a durable pull consumer
 *   with explicit acks (ack after handling) keeps at most `--concurrency` messages in hand (raw: `consume()` with
 *   `max_messages`; adapter: `concurrency`).
 * - Kafka: 3 partitions, keys `k0`..`k99`, one `send` per message with `acks: -1`, the adapter's consumer settings
 *   (session 10 s, heartbeat 500 ms, `maxWaitTimeInMs` 100), 3 partitions consumed concurrently.
 *
 * Each variant runs once as a warm-up (a fifth of the messages), then the variants alternate (raw, envelope, adapter) for
 * `--rounds` rounds. The table shows medians; the ratio is the median of the per-round adapter/raw ratios.
 * Streams, consumers, Kafka topics and groups made by the run are deleted. Exits non-zero when a run fails (a message
 * missing after 30 s without progress, a broker error), not when a target is missed. With `--write` (only on a run of
 * all three brokers), replaces the "Messaging" section of docs/performance.md, keeping its `###` subsections.
 *
 *   deno task bench:messaging [--messages N] [--rounds 3] [--only nats|jetstream|kafka] [--window 256]
 *     [--concurrency 64] [--write]
 */
import process from "node:process";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  type JetStreamManager,
  jetstreamManager,
  StorageType,
} from "@nats-io/jetstream";
import { type Admin, Kafka, logLevel } from "kafkajs";
import { createLogger } from "@trellis/platform/log";
import {
  createJetStreamPubSub,
  createKafkaPubSub,
  createNatsPubSub,
  KafkaMessageHeaders,
  type Message,
  NatsMessageHeaders,
  type PubSub,
  type Subscription,
} from "@trellis/platform/messaging";
import { rawKafkajs } from "./raw_kafkajs.ts";
import { percentile, Recorder } from "./recorder.ts";
import { cpuModel, loadavg, median, writePerformanceSection } from "./wrk.ts";

const BROKERS = ["nats", "jetstream", "kafka"] as const;
type Broker = typeof BROKERS[number];
const VARIANTS = ["raw", "envelope", "adapter"] as const;
type Variant = typeof VARIANTS[number];
/** The variants a broker runs: a raw client with the adapter's envelope headers is a reference for NATS Core and Kafka. */
const variantsOf = (b: Broker): Variant[] => VARIANTS.filter((v) => rigs[b][v] !== undefined);

const TARGET = 0.9;
const PAYLOAD_BYTES = 256;
const KAFKA_PARTITIONS = 3;
const KAFKA_KEYS = 100;
/**
 * Publishers also wait while more than this many windows of messages are published but not yet consumed, so every
 * broker runs with a bounded backlog and latency does not just grow with the run's length. NATS Core needs it anyway:
 * it has no flow control, and a confirmed publish may still wait in the subscriber's queue.
 */
const UNCONSUMED_WINDOWS = 4;
/** The consumer settings `createKafkaPubSub` uses by default. */
const KAFKA_CONSUMER = {
  sessionTimeout: 10_000,
  heartbeatInterval: 500,
  rebalanceTimeout: 10_000,
  maxWaitTimeInMs: 100,
};
const NATS_URL = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";
const KAFKA_BROKERS = (Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(",");
/** Per broker, so each timed run lasts about a second or more on a 2-core machine. */
const DEFAULT_MESSAGES: Record<Broker, number> = { nats: 200_000, jetstream: 30_000, kafka: 20_000 };
const TITLES: Record<Broker, string> = { nats: "NATS Core", jetstream: "JetStream", kafka: "Kafka" };

const args = Deno.args;
const option = (name: string): string | undefined => args.includes(name) ? args[args.indexOf(name) + 1] : undefined;
const count = (name: string, dflt: number) => Number(option(name) ?? dflt);
const messagesFlag = option("--messages") === undefined ? undefined : count("--messages", 0);
const rounds = count("--rounds", 3);
const window = count("--window", 256);
const concurrency = count("--concurrency", 64);
const only = option("--only");
const write = args.includes("--write");
const positive = (n: number | undefined) => n === undefined || (Number.isInteger(n) && n >= 1);
if (
  ![messagesFlag, rounds, window, concurrency].every(positive) || (only !== undefined && !isBroker(only)) ||
  (write && only !== undefined)
) {
  console.error(
    "usage: deno task bench:messaging [--messages N] [--rounds N] [--only nats|jetstream|kafka] [--window N]" +
      " [--concurrency N] [--write (all brokers only)]",
  );
  Deno.exit(2);
}
const brokers: readonly Broker[] = only ? [only as Broker] : BROKERS;
const messagesFor = (b: Broker) => messagesFlag ?? DEFAULT_MESSAGES[b];

/** Adapter failures (handler errors, fetch retries) go to stderr; the bench's own output is the table. */
const logger = createLogger("bench-messaging", { level: "warn", write: (line) => console.error(line) });
const runId = crypto.randomUUID().slice(0, 8);
let seq = 0;

/** One timed run of one variant. */
interface RunResult {
  /** Messages consumed per second, first publish to last message consumed. */
  rate: number;
  p50Ms: number;
  p99Ms: number;
  /**
   * This process's CPU (user + system: publisher, consumer and client library) per message, in µs. On a busy machine
   * it varies far less than msg/s, which waits on whatever else the cores run.
   */
  cpuUs: number;
}

/** A variant set up on a fresh topic, its subscriber feeding a {@linkcode Recorder}; `publish` resolves once confirmed. */
interface Rig {
  publish(payload: Uint8Array, i: number): Promise<unknown>;
  close(): Promise<void>;
}

const rigs: Record<Broker, Partial<Record<Variant, (topic: string, rec: Recorder) => Promise<Rig>>>> = {
  nats: { raw: (t, r) => rawNats(t, r, false), envelope: (t, r) => rawNats(t, r, true), adapter: adapterNats },
  jetstream: { raw: rawJetStream, adapter: adapterJetStream },
  kafka: { raw: (t, r) => rawKafka(t, r, false), envelope: (t, r) => rawKafka(t, r, true), adapter: adapterKafka },
};

const loadBefore = await loadavg();
const startedAt = performance.now();
const results = {} as Record<Broker, Record<Variant, RunResult[]>>;
let kafkaAdmin: Admin | undefined;
const kafkaTopics: string[] = [];
const kafkaGroups: string[] = [];
try {
  for (const broker of brokers) {
    const n = messagesFor(broker);
    results[broker] = { raw: [], envelope: [], adapter: [] };
    for (const variant of variantsOf(broker)) await once(broker, variant, Math.max(1, Math.floor(n / 5)));
    for (let round = 1; round <= rounds; round++) {
      for (const variant of variantsOf(broker)) {
        const r = await once(broker, variant, n);
        results[broker][variant].push(r);
        console.log(
          `${broker.padEnd(9)} round ${round} ${variant.padEnd(8)} ${fmtRate(r.rate).padStart(7)} msg/s` +
            `  p50 ${r.p50Ms.toFixed(2)} ms` +
            `  p99 ${r.p99Ms.toFixed(2)} ms  CPU ${r.cpuUs.toFixed(2)} µs/msg`,
        );
      }
    }
  }
} finally {
  await cleanUpKafka().catch((err) => console.error(`could not delete the bench's Kafka topics/groups: ${err}`));
}
const loadAfter = await loadavg();
const elapsedS = (performance.now() - startedAt) / 1000;

const summaries = brokers.map((broker) => summarize(broker, results[broker]));
console.log("");
console.log(table(summaries));
console.log("");
for (const s of summaries) {
  console.log(
    `${s.broker}: adapter/raw ${s.ratio.toFixed(3)} (target >= ${TARGET}: ${s.ratio >= TARGET ? "met" : "NOT met"});` +
      ` raw ${fmtRate(s.raw.rate)} msg/s p99 ${s.raw.p99Ms.toFixed(2)} ms, adapter ${fmtRate(s.adapter.rate)} msg/s` +
      ` p99 ${s.adapter.p99Ms.toFixed(2)} ms; ${messagesFor(s.broker)} messages x ${rounds} rounds` +
      (s.envelopeRatio === undefined ? "" : `; raw + envelope headers / raw ${s.envelopeRatio.toFixed(3)}`) +
      (s.overEnvelope === undefined ? "" : `; adapter / (raw + envelope headers) ${s.overEnvelope.toFixed(3)}`) +
      (s.cpuOverEnvelope === undefined
        ? ""
        : `; by CPU per message (envelope CPU / adapter CPU) ${s.cpuOverEnvelope.toFixed(3)}: raw ${
          s.raw.cpuUs.toFixed(2)
        }, envelope ${s.envelope!.cpuUs.toFixed(2)}, adapter ${s.adapter.cpuUs.toFixed(2)} µs/msg`),
  );
}
console.log(`\n${elapsedS.toFixed(0)} s; load average before ${loadBefore}, after ${loadAfter}`);
if (write) console.log(`wrote ${await writeSection(summaries)}`);

/** One run of `variant` with `n` messages on a fresh topic: subscribe, publish with the window, wait, tear down. */
async function once(broker: Broker, variant: Variant, n: number): Promise<RunResult> {
  const topic = `bench-messaging.${runId}.${broker}.${variant}.${++seq}`;
  const rec = new Recorder(n);
  const rig = await rigs[broker][variant]!(topic, rec);
  let result: RunResult;
  try {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    let next = 0;
    const limit = UNCONSUMED_WINDOWS * window;
    const publisher = async () => {
      while (next < n) {
        const i = next++;
        const room = rec.room(i, limit);
        if (room) await room;
        const payload = new Uint8Array(PAYLOAD_BYTES);
        new DataView(payload.buffer).setFloat64(0, performance.now(), true);
        await rig.publish(payload, i);
      }
    };
    const consumed = rec.done();
    await Promise.all(Array.from({ length: Math.min(window, n) }, publisher));
    const last = await consumed;
    const cpu = process.cpuUsage(cpu0);
    const sorted = rec.latencies.sort();
    result = {
      cpuUs: (cpu.user + cpu.system) / n,
      rate: n / ((last - t0) / 1000),
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
    };
  } finally {
    await rig.close();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------- NATS Core

/** Raw NATS Core; with `envelope`, publishing and reading the headers the adapter sends (id and publish time). */
async function rawNats(topic: string, rec: Recorder, envelope: boolean): Promise<Rig> {
  const nc = await connect({ servers: NATS_URL, name: "bench-messaging-raw" });
  const sub = nc.subscribe(topic);
  const loop = (async () => {
    for await (const m of sub) {
      if (envelope) {
        const h = m.headers;
        if (!h?.get(NatsMessageHeaders.id) || !h.get(NatsMessageHeaders.timestamp)) throw new Error("no envelope");
      }
      rec.record(m.data);
    }
  })();
  await nc.flush();
  let flushing: Promise<void> | undefined;
  return {
    publish(payload) {
      if (envelope) {
        const h = natsHeaders();
        h.append(NatsMessageHeaders.id, crypto.randomUUID());
        h.append(NatsMessageHeaders.timestamp, String(Date.now()));
        nc.publish(topic, payload, { headers: h });
      } else nc.publish(topic, payload);
      flushing ??= Promise.resolve().then(() => {
        flushing = undefined;
        return nc.flush();
      });
      return flushing;
    },
    async close() {
      await sub.drain();
      await loop;
      await closeNats(nc);
    },
  };
}

async function adapterNats(topic: string, rec: Recorder): Promise<Rig> {
  const bus = await createNatsPubSub({ servers: NATS_URL, name: "bench-messaging-adapter", logger });
  return await adapterRig(bus, topic, rec, {});
}

// ---------------------------------------------------------------------------------------------------- JetStream

/** The stream the adapter's `ensureStream` would create, made ahead the same way for both variants. */
async function addStream(jsm: JetStreamManager, topic: string): Promise<string> {
  const name = topic.replace(/[^A-Za-z0-9_-]/g, "_");
  await jsm.streams.add({ name, subjects: [topic], storage: StorageType.File, duplicate_window: 120_000_000_000 });
  return name;
}

/** A fresh stream for `topic` around the rig `make` builds; the stream is deleted on close or when set-up fails. */
async function withStream(topic: string, make: (jsm: JetStreamManager, stream: string) => Promise<Rig>): Promise<Rig> {
  const nc = await connect({ servers: NATS_URL, name: "bench-messaging-admin" });
  try {
    const jsm = await jetstreamManager(nc);
    const stream = await addStream(jsm, topic);
    let rig: Rig;
    try {
      rig = await make(jsm, stream);
    } catch (err) {
      await jsm.streams.delete(stream);
      throw err;
    }
    return {
      publish: rig.publish,
      async close() {
        try {
          await rig.close();
        } finally {
          await jsm.streams.delete(stream);
          await closeNats(nc);
        }
      },
    };
  } catch (err) {
    await closeNats(nc);
    throw err;
  }
}

function rawJetStream(topic: string, rec: Recorder): Promise<Rig> {
  return withStream(topic, async (jsm, stream) => {
    const durable = "bench";
    // The consumer the adapter creates for a group.
    await jsm.consumers.add(stream, {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: 30_000_000_000,
      max_deliver: -1,
      filter_subject: topic,
    });
    const nc = await connect({ servers: NATS_URL, name: "bench-messaging-raw" });
    try {
      const js = jetstream(nc);
      const messages = await (await js.consumers.get(stream, durable)).consume({ max_messages: concurrency });
      const loop = (async () => {
        for await (const m of messages) {
          rec.record(m.data);
          m.ack();
        }
      })();
      return {
        publish: (payload) => js.publish(topic, payload),
        async close() {
          await messages.close();
          await loop;
          await closeNats(nc);
        },
      };
    } catch (err) {
      await closeNats(nc);
      throw err;
    }
  });
}

function adapterJetStream(topic: string, rec: Recorder): Promise<Rig> {
  return withStream(topic, async () => {
    const bus = await createJetStreamPubSub({ servers: NATS_URL, name: "bench-messaging-adapter", logger });
    return await adapterRig(bus, topic, rec, { group: "bench", concurrency });
  });
}

// ---------------------------------------------------------------------------------------------------- Kafka

async function kafkaTopic(topic: string): Promise<{ topic: string; group: string }> {
  if (!kafkaAdmin) {
    const admin = new Kafka({ clientId: "bench-messaging-admin", brokers: KAFKA_BROKERS, logLevel: logLevel.WARN })
      .admin();
    await admin.connect();
    kafkaAdmin = admin;
  }
  await kafkaAdmin.createTopics({
    waitForLeaders: true,
    topics: [{ topic, numPartitions: KAFKA_PARTITIONS, replicationFactor: 1 }],
  });
  kafkaTopics.push(topic);
  const group = `${topic}.group`;
  kafkaGroups.push(group);
  return { topic, group };
}

/** Raw kafkajs; with `envelope`, sending and reading the id header the adapter sends. */
async function rawKafka(name: string, rec: Recorder, envelope: boolean): Promise<Rig> {
  const { topic, group } = await kafkaTopic(name);
  const rig = await rawKafkajs({
    clientId: "bench-messaging-raw",
    brokers: KAFKA_BROKERS,
    topic,
    group,
    consumer: KAFKA_CONSUMER,
    partitions: KAFKA_PARTITIONS,
    rec,
    envelope,
  });
  return { publish: (payload, i) => rig.publish(payload, `k${i % KAFKA_KEYS}`), close: () => rig.close() };
}

async function adapterKafka(name: string, rec: Recorder): Promise<Rig> {
  const { topic, group } = await kafkaTopic(name);
  const bus = createKafkaPubSub({ clientId: "bench-messaging-adapter", brokers: KAFKA_BROKERS, logger });
  return await adapterRig(bus, topic, rec, { group, concurrency: KAFKA_PARTITIONS });
}

async function cleanUpKafka(): Promise<void> {
  if (!kafkaAdmin) return;
  try {
    if (kafkaGroups.length > 0) await kafkaAdmin.deleteGroups(kafkaGroups).catch(() => {});
    if (kafkaTopics.length > 0) await kafkaAdmin.deleteTopics({ topics: kafkaTopics });
  } finally {
    await kafkaAdmin.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------------- shared

/** Subscribes the recorder through an adapter; publishes with keys `k0`.. as the raw Kafka variant does. */
async function adapterRig(
  bus: PubSub,
  topic: string,
  rec: Recorder,
  options: { group?: string; concurrency?: number },
): Promise<Rig> {
  let sub: Subscription;
  try {
    sub = await bus.subscribe(topic, (msg: Message) => rec.record(msg.payload), options);
  } catch (err) {
    await bus.close();
    throw err;
  }
  const keyed = bus.features.orderedPerKey;
  return {
    publish: (payload, i) => bus.publish(topic, { key: keyed ? `k${i % KAFKA_KEYS}` : undefined, payload }),
    async close() {
      await sub.close();
      await bus.close();
    },
  };
}

async function closeNats(nc: NatsConnection): Promise<void> {
  if (nc.isClosed()) return;
  await nc.drain();
  await nc.closed();
}

function isBroker(s: string): s is Broker {
  return (BROKERS as readonly string[]).includes(s);
}

function fmtRate(r: number): string {
  return r.toFixed(0);
}

interface Summary {
  broker: Broker;
  raw: RunResult;
  envelope?: RunResult;
  adapter: RunResult;
  ratios: number[];
  ratio: number;
  /** Median per-round envelope/raw ratio, when the broker runs the envelope reference. */
  envelopeRatio?: number;
  /** Median per-round adapter/envelope ratio: the adapter against the raw client carrying the same headers. */
  overEnvelope?: number;
  /** Median per-round envelope CPU per message / adapter CPU per message. */
  cpuOverEnvelope?: number;
  perRound: Record<Variant, RunResult[]>;
}

function summarize(broker: Broker, runs: Record<Variant, RunResult[]>): Summary {
  const mid = (rs: RunResult[]): RunResult => ({
    rate: median(rs.map((r) => r.rate)),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    cpuUs: median(rs.map((r) => r.cpuUs)),
  });
  // Each adapter run against the raw run just before it, so drift in machine load cancels out.
  const ratios = runs.adapter.map((r, i) => r.rate / runs.raw[i].rate);
  const hasEnvelope = runs.envelope.length > 0;
  return {
    broker,
    raw: mid(runs.raw),
    envelope: hasEnvelope ? mid(runs.envelope) : undefined,
    adapter: mid(runs.adapter),
    ratios,
    ratio: median(ratios),
    envelopeRatio: hasEnvelope ? median(runs.envelope.map((r, i) => r.rate / runs.raw[i].rate)) : undefined,
    overEnvelope: hasEnvelope ? median(runs.adapter.map((r, i) => r.rate / runs.envelope[i].rate)) : undefined,
    cpuOverEnvelope: hasEnvelope ? median(runs.adapter.map((r, i) => runs.envelope[i].cpuUs / r.cpuUs)) : undefined,
    perRound: runs,
  };
}

function table(summaries: Summary[]): string {
  const rows = [
    ["broker", "variant", "msg/s", "p50", "p99", "adapter/raw"],
    ["---", "---", "---:", "---:", "---:", "---:"],
  ];
  for (const s of summaries) {
    for (const v of VARIANTS) {
      const r = s[v];
      if (!r) continue;
      rows.push([
        TITLES[s.broker],
        v === "raw"
          ? rawName(s.broker)
          : v === "envelope"
          ? `${rawName(s.broker)} + envelope headers`
          : adapterName(s.broker),
        fmtRate(r.rate),
        `${r.p50Ms.toFixed(2)} ms`,
        `${r.p99Ms.toFixed(2)} ms`,
        v === "adapter" ? `**${s.ratio.toFixed(3)}**` : v === "envelope" ? `(${s.envelopeRatio!.toFixed(3)})` : "",
      ]);
    }
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => `| ${r.map((cell, c) => cell.padEnd(widths[c])).join(" | ")} |`).join("\n");
}

function rawName(b: Broker): string {
  return { nats: "raw `@nats-io/transport-node`", jetstream: "raw `@nats-io/jetstream`", kafka: "raw `kafkajs`" }[b];
}

function adapterName(b: Broker): string {
  return { nats: "`createNatsPubSub`", jetstream: "`createJetStreamPubSub`", kafka: "`createKafkaPubSub`" }[b];
}

/** Replaces the "Messaging" section of docs/performance.md with fresh figures (its `###` subsections stay). */
async function writeSection(summaries: Summary[]): Promise<string> {
  const heading = "## Messaging";
  const cpu = await cpuModel();
  const perRound = summaries.map((s) => {
    const fmt = (v: Variant) =>
      s.perRound[v].map((r) => `${fmtRate(r.rate)} msg/s p99 ${r.p99Ms.toFixed(2)} ms`).join("; ");
    const env = s.envelope ? ` Raw + envelope ${fmt("envelope")}.` : "";
    return `- ${TITLES[s.broker]}: raw ${fmt("raw")}.${env} Adapter ${fmt("adapter")}. Ratios ${
      s.ratios.map((r) => r.toFixed(3)).join(", ")
    }.`;
  }).join("\n");
  const verdicts = summaries.map((s) =>
    `${TITLES[s.broker]} **${s.ratio.toFixed(3)}** (${s.ratio >= TARGET ? "met" : "NOT met"})`
  ).join(", ");
  const section = `${heading}

\`deno task bench:messaging\` (\`scripts/bench_messaging.ts\`), run ${new Date().toISOString().slice(0, 10)}, ${
    elapsedS.toFixed(0)
  } s in total.

Machine: ${navigator.hardwareConcurrency} cores (${cpu}), ${Deno.build.os}/${Deno.build.arch}, Deno ${Deno.version.deno};
NATS (JetStream, file storage) and Kafka 3.9 (KRaft, one broker) on the same machine over loopback. Load average
(1/5/15 min) before ${loadBefore}, after ${loadAfter}.

Each variant publishes ${PAYLOAD_BYTES}-byte payloads with a sliding window of ${window} unconfirmed publishes while one
subscription on a fresh topic consumes them; publishers also wait while more than ${
    UNCONSUMED_WINDOWS * window
  } messages are published but not yet consumed, so the backlog stays bounded. The publish time travels in the payload
and the consumer takes the end-to-end latency from it; msg/s is messages over first publish to last message consumed.
Raw is the client library driven with the same guarantees and no headers: NATS Core publishes and subscribes on one
connection, a publish confirmed by a flush shared by the publishes of a tick (as the adapter does), one message handled
at a time (the adapter's default concurrency); JetStream publishes
wait for the PubAck, a durable pull consumer with explicit acks holds at most ${concurrency} messages (raw
\`consume({ max_messages })\`, adapter \`concurrency\`); Kafka sends one message per \`send\` with \`acks: -1\`, keys
\`k0\`..\`k${
    KAFKA_KEYS - 1
  }\`, ${KAFKA_PARTITIONS} partitions consumed concurrently (adapter \`concurrency: ${KAFKA_PARTITIONS}\`) with the adapter's
consumer settings. Messages per run: ${brokers.map((b) => `${TITLES[b]} ${messagesFor(b)}`).join(", ")}. After one
warm-up run each (a fifth of the messages), the variants alternate (raw, raw + envelope where run, adapter) for ${rounds}
rounds. The table shows medians; the ratio is the median of each round's adapter/raw msg/s ratio.

"Raw + envelope headers" is a reference, not a target: the raw client sending and reading the headers the adapter's
envelope needs at the least (NATS Core: \`${NatsMessageHeaders.id}\` and \`${NatsMessageHeaders.timestamp}\`; Kafka:
\`${KafkaMessageHeaders.id}\`), with nothing else of the adapter. In parentheses, its ratio to raw: what carrying the
message id (and publish time) costs the client library itself, whatever code drives it.

${table(summaries)}

Ratio adapter/raw (target >= ${TARGET}): ${verdicts}.

Per round:

${perRound}
`;
  return writePerformanceSection(heading, section);
}
