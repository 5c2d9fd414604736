import type { Database } from "@trellis/platform/db";
import {
  createJetStreamPubSub,
  createKafkaPubSub,
  createNatsPubSub,
  type DeadLetterStore,
  type PubSub,
  tracePubSub,
} from "@trellis/platform/messaging";
import type { Logger } from "@trellis/platform/log";
import { localStore } from "@trellis/platform/storage";
import { Notices, Topics } from "./events.ts";
import { connectServiceDatabase, type Infra, migrateService, once } from "./infra.ts";

/** Where the distributed infrastructure is. */
export interface DistributedOptions {
  /** A Postgres URL; each service gets its own database named `<databasePrefix>_<service>` on that server. */
  databaseUrl: string;
  /** @default {"trellis"} */
  databasePrefix?: string;
  kafkaBrokers: string[];
  /**
   * Which Kafka client the adapter runs on (`KAFKA_CLIENT`): `kafkajs` or `platformatic` (`@platformatic/kafka`,
   * loaded only when chosen); the README's "Choosing the Kafka client" says why the default is what it is.
   * @default {"kafkajs"}
   */
  kafkaClient?: KafkaClient;
  /**
   * Longest a Kafka fetch waits at the broker for new data (`KAFKA_FETCH_MAX_WAIT_MS`). A fetch answers as soon as a
   * record arrives, so this sets only how often an idle consumer asks again: 500 instead of the adapter's 100 took
   * 3–14 ms of CPU per second off each idle Kafka-consuming service (docs/performance.md, "Footprint").
   * @default {500}
   */
  kafkaFetchMaxWaitMs?: number;
  natsUrl: string;
  /** Prepended to every topic and subject, so test runs sharing a broker do not see each other. @default {""} */
  topicPrefix?: string;
  storageDir: string;
  /** Names this process to the brokers. */
  clientId: string;
  logger: Logger;
}

/** The Kafka client libraries an adapter exists for. */
export type KafkaClient = "kafkajs" | "platformatic";

/** Reads {@linkcode DistributedOptions} from `DATABASE_URL`, `KAFKA_BROKERS`, `NATS_URL`, ... */
export function distributedOptionsFromEnv(
  env: Record<string, string | undefined>,
  clientId: string,
  logger: Logger,
): DistributedOptions {
  return {
    databaseUrl: env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
    databasePrefix: env.DATABASE_PREFIX ?? "trellis",
    kafkaBrokers: (env.KAFKA_BROKERS ?? "127.0.0.1:9092").split(",").map((s) => s.trim()).filter(Boolean),
    kafkaClient: kafkaClientOf(env.KAFKA_CLIENT),
    kafkaFetchMaxWaitMs: fetchMaxWaitOf(env.KAFKA_FETCH_MAX_WAIT_MS),
    natsUrl: env.NATS_URL ?? "nats://127.0.0.1:4222",
    topicPrefix: env.TOPIC_PREFIX ?? "",
    storageDir: env.STORAGE_DIR ?? ".trellis/storage",
    clientId,
    logger,
  };
}

function kafkaClientOf(value: string | undefined): KafkaClient {
  if (value === undefined || value === "" || value === "kafkajs") return "kafkajs";
  if (value === "platformatic") return "platformatic";
  throw new RangeError(`Cannot use KAFKA_CLIENT=${JSON.stringify(value)}: it must be kafkajs or platformatic`);
}

function fetchMaxWaitOf(value: string | undefined): number {
  if (value === undefined || value === "") return 500;
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 1 || ms > 10_000) {
    throw new RangeError(
      `Cannot use KAFKA_FETCH_MAX_WAIT_MS=${JSON.stringify(value)}: it must be an integer from 1 to 10000 (ms)`,
    );
  }
  return ms;
}

/**
 * Distributed infrastructure: a Postgres database per service, Kafka for durable topics (created up front with three
 * partitions each), NATS JetStream for jobs (streams created up front), NATS Core for notices, local-disk storage.
 */
export function distributedInfra(options: DistributedOptions): Infra {
  const prefix = options.topicPrefix ?? "";
  const dbs: Database[] = [];
  const events = once(async () => {
    const kafkaOptions = {
      brokers: options.kafkaBrokers,
      clientId: options.clientId,
      logger: options.logger,
      consumer: { maxWaitTimeInMs: options.kafkaFetchMaxWaitMs ?? 500 },
    };
    const kafka = options.kafkaClient === "platformatic"
      ? (await import("@trellis/platform/messaging/kafka-platformatic")).createPlatformaticKafkaPubSub(
        kafkaOptions,
      )
      : createKafkaPubSub(kafkaOptions);
    try {
      await kafka.ensureTopics(Object.values(Topics).map((t) => prefix + t), { partitions: 3 });
    } catch (err) {
      await kafka.close();
      throw err;
    }
    return tracePubSub(prefixTopics(kafka, prefix), "kafka");
  });
  const jobs = once(async () => {
    const js = await createJetStreamPubSub({
      servers: options.natsUrl,
      name: `${options.clientId}-jobs`,
      logger: options.logger,
    });
    try {
      // Up front, like the Kafka topics, so a JetStream that cannot hold the stream fails the start, not a receipt.
      for (const subject of Object.values(Notices)) await js.ensureStream(prefix + subject);
    } catch (err) {
      await js.close();
      throw err;
    }
    return tracePubSub(prefixTopics(js, prefix), "jetstream");
  });
  const notices = once(async () =>
    tracePubSub(
      prefixTopics(
        await createNatsPubSub({ servers: options.natsUrl, name: options.clientId, logger: options.logger }),
        prefix,
      ),
      "nats",
    )
  );
  const storage = localStore(options.storageDir);
  let closing: Promise<void> | undefined;
  return {
    async database(service, wanted) {
      const db = await connectServiceDatabase(options.databaseUrl, options.databasePrefix ?? "trellis", service);
      dbs.push(db);
      await migrateService(db, service, wanted?.with);
      return db;
    },
    events: events.get,
    jobs: jobs.get,
    notices: notices.get,
    storage: () => storage,
    close() {
      closing ??= (async () => {
        const open = [events.peek(), jobs.peek(), notices.peek()].filter((p) => p !== undefined);
        await Promise.all(open.map(async (p) => (await p.catch(() => undefined))?.close()));
        await Promise.all(dbs.map((db) => db.close()));
      })();
      return closing;
    },
  };
}

/** A view of `bus` in which every topic and consumer group is `prefix + name`. */
export function prefixTopics(bus: PubSub, prefix: string): PubSub {
  if (!prefix) return bus;
  return {
    features: bus.features,
    ping: bus.ping && ((signal) => bus.ping!(signal)),
    publish: (topic, msg) => bus.publish(prefix + topic, msg),
    // The consumer group too: runs sharing a broker must not share groups, or Kafka hands one run's partitions to the
    // other's members, which do not consume them.
    subscribe: (topic, handler, options) =>
      bus.subscribe(prefix + topic, handler, options?.group ? { ...options, group: prefix + options.group } : options),
    deadLetters: bus.deadLetters && prefixStore(bus.deadLetters, prefix),
    close: () => bus.close(),
  };
}

/** A view of `store` in which every topic is `prefix + topic`, so the dead-letter operations find the prefixed topics. */
function prefixStore(store: DeadLetterStore, prefix: string): DeadLetterStore {
  return {
    scan: (topic, signal) => store.scan(prefix + topic, signal),
    get: (topic, ref, signal) => store.get(prefix + topic, ref, signal),
    remove: (topic, refs) => store.remove(prefix + topic, refs),
  };
}
