import type { Logger } from "../../../log/mod.ts";
import type { BackoffOptions } from "../../../async/mod.ts";
import type { Features, PubSub } from "../../message.ts";
import type { DeadLetterStore } from "../../dlq/dead_letter_store.ts";
import { positiveInteger } from "../_arguments.ts";

/**
 * What both Kafka adapters guarantee (`createKafkaPubSub`, `createPlatformaticKafkaPubSub`).
 *
 * @example Size a payload for Kafka
 * ```ts
 * import { kafkaFeatures } from "./settings.ts";
 * const fits = (payload: Uint8Array) => payload.byteLength <= kafkaFeatures.maxMessageBytes;
 * ```
 */
export const kafkaFeatures: Features = Object.freeze({
  persistent: true,
  consumerGroups: true,
  orderedPerKey: true,
  redelivery: true,
  requestReply: false,
  wildcards: true,
  maxMessageBytes: 1024 * 1024 - 8 * 1024,
});

/**
 * Kafka record headers that carry message fields Kafka has no slot for (key and timestamp travel natively).
 *
 * @example Read a message id off a record read with a raw Kafka client
 * ```ts
 * import { KafkaMessageHeaders } from "./settings.ts";
 * const idOf = (headers: Map<string, string>) => headers.get(KafkaMessageHeaders.id);
 * ```
 */
export const KafkaMessageHeaders = Object.freeze({ id: "message-id" });

/**
 * Consumer tuning; the defaults favour fast group joins and low latency on a local broker.
 *
 * @example Hold less while a handler is slow
 * ```ts
 * import type { KafkaConsumerTuning } from "./settings.ts";
 * const tuning: KafkaConsumerTuning = { maxBufferedMessages: 200, maxBufferedBytes: 4 * 1024 * 1024 };
 * ```
 */
export interface KafkaConsumerTuning {
  /** Broker evicts a member silent for this long; must lie within the broker's group session bounds. @default {10000} */
  sessionTimeout?: number;
  /** How often members heartbeat, which is also how fast they notice a rebalance. @default {500} */
  heartbeatInterval?: number;
  /** How long the coordinator waits for members to rejoin during a rebalance. @default {10000} */
  rebalanceTimeout?: number;
  /** Longest a fetch waits for new data at the broker. @default {100} */
  maxWaitTimeInMs?: number;
  /** How long `subscribe` waits for the consumer to join its group before it fails. @default {30000} */
  joinTimeoutMs?: number;
  /**
   * Most messages a subscription holds between fetching and committing them (those in flight included); fetching
   * stops while it holds this many. Never below the subscription's `concurrency`. @default {1000}
   */
  maxBufferedMessages?: number;
  /**
   * Most payload bytes a subscription holds fetched but not yet handled; fetching stops while it holds this many
   * (one message is always let through, however big). Payloads are copied out of the fetch response in blocks of up
   * to 16 KiB shared by consecutive messages, and a block counts whole until all its messages are handled.
   * @default {16777216}
   */
  maxBufferedBytes?: number;
  /** Longest a handled message waits for its offset commit; commits are batched within this window. @default {100} */
  commitIntervalMs?: number;
  /** How often a subscription to a topic pattern lists the topics to pick up new matching ones. @default {5000} */
  patternRefreshMs?: number;
}

/**
 * `tuning` with every default filled in and checked (a `RangeError` names a bad value); `client` holds the settings
 * the Kafka client takes itself. Shared by both Kafka adapters, so they accept and default the same options.
 *
 * @example Fill in the defaults
 * ```ts
 * import { kafkaConsumerSettings } from "./settings.ts";
 * kafkaConsumerSettings({ commitIntervalMs: 50 }).client.sessionTimeout; // 10000
 * ```
 */
export function kafkaConsumerSettings(tuning: KafkaConsumerTuning = {}): {
  joinTimeoutMs: number;
  maxBufferedMessages: number;
  maxBufferedBytes: number;
  commitIntervalMs: number;
  patternRefreshMs: number;
  client: Required<
    Pick<KafkaConsumerTuning, "sessionTimeout" | "heartbeatInterval" | "rebalanceTimeout" | "maxWaitTimeInMs">
  >;
} {
  const {
    joinTimeoutMs = 30_000,
    maxBufferedMessages = 1000,
    maxBufferedBytes = 16 * 1024 * 1024,
    commitIntervalMs = 100,
    patternRefreshMs = 5000,
    ...client
  } = tuning;
  const action = "create a Kafka adapter";
  positiveInteger(maxBufferedMessages, action, "consumer.maxBufferedMessages");
  positiveInteger(maxBufferedBytes, action, "consumer.maxBufferedBytes");
  positiveInteger(patternRefreshMs, action, "consumer.patternRefreshMs");
  if (!Number.isInteger(commitIntervalMs) || commitIntervalMs < 0) {
    throw new RangeError(
      `Cannot ${action} as consumer.commitIntervalMs is not a non-negative integer: current value is ${commitIntervalMs}`,
    );
  }
  return {
    joinTimeoutMs,
    maxBufferedMessages,
    maxBufferedBytes,
    commitIntervalMs,
    patternRefreshMs,
    client: {
      sessionTimeout: 10_000,
      heartbeatInterval: 500,
      rebalanceTimeout: 10_000,
      maxWaitTimeInMs: 100,
      ...client,
    },
  };
}

/**
 * Options for both Kafka adapters (`createKafkaPubSub`, `createPlatformaticKafkaPubSub`).
 *
 * @example Two brokers and a quicker redelivery
 * ```ts
 * import type { KafkaPubSubOptions } from "./settings.ts";
 * const options: KafkaPubSubOptions = {
 *   brokers: ["10.0.0.1:9092", "10.0.0.2:9092"],
 *   redelivery: { baseDelayMs: 20, maxDelayMs: 500 },
 * };
 * ```
 */
export interface KafkaPubSubOptions {
  /** Bootstrap brokers. @default {["127.0.0.1:9092"]} */
  brokers?: string[];
  /** Client id the broker logs. @default {"trellis"} */
  clientId?: string;
  /** Receives kafkajs's own log lines (WARN and above) and handler failures. @default {createLogger("messaging")} */
  logger?: Logger;
  /** Backoff between in-place retries of a message whose handler threw. @default {{ baseDelayMs: 100, maxDelayMs: 2000 }} */
  redelivery?: BackoffOptions;
  /** Consumer settings. */
  consumer?: KafkaConsumerTuning;
  /**
   * Largest payload `publish` accepts. The default fits the broker's default `message.max.bytes` (1 MiB + 12 bytes
   * per record batch) with room for the key, headers and batch overhead; raise it only together with the broker's
   * and topic's limits. @default {1040384}
   */
  maxMessageBytes?: number;
}

/**
 * Options for {@linkcode KafkaPubSub.ensureTopics}.
 *
 * @example Six partitions, three replicas
 * ```ts
 * import type { EnsureTopicsOptions } from "./settings.ts";
 * const options: EnsureTopicsOptions = { partitions: 6, replicationFactor: 3 };
 * ```
 */
export interface EnsureTopicsOptions {
  /** Partitions each topic has at least; an existing topic with fewer is grown. @default {1} */
  partitions?: number;
  /** Replicas per partition. @default {1} */
  replicationFactor?: number;
}

/**
 * A Kafka adapter: a {@linkcode PubSub} plus topic administration.
 *
 * @example Create a topic before subscribing
 * ```ts
 * import type { KafkaPubSub } from "./settings.ts";
 * async function prepare(bus: KafkaPubSub): Promise<void> {
 *   await bus.ensureTopics(["orders.events"], { partitions: 6 });
 * }
 * ```
 */
export interface KafkaPubSub extends PubSub {
  /** Creates the topics that do not exist yet (and grows ones with too few partitions), waiting for their leaders. */
  ensureTopics(topics: string[], options?: EnsureTopicsOptions): Promise<void>;
  /** A metadata round trip to a broker: see {@linkcode PubSub.ping}. */
  ping(signal?: AbortSignal): Promise<void>;
  /** Reads topics through throwaway groups and marks letters handled, for the dead-letter operations. */
  readonly deadLetters: DeadLetterStore;
}

/**
 * The RegExp a topic pattern stands for, or `undefined` for a plain topic. `*` matches one dot-separated token and
 * `>` one or more trailing tokens, as in NATS subjects; both must be whole tokens (`*` and `>` are not valid in Kafka
 * topic names, so a pattern can never be mistaken for a topic).
 *
 * @example Match topics as NATS subjects
 * ```ts
 * import { topicPattern } from "./settings.ts";
 * topicPattern("orders.*.created")?.test("orders.eu.created"); // true
 * topicPattern("orders.>")?.test("orders.eu.created"); // true
 * topicPattern("orders.events"); // undefined
 * ```
 */
export function topicPattern(topic: string): RegExp | undefined {
  if (!/[*>]/.test(topic)) return undefined;
  const tokens = topic.split(".");
  const source = tokens.map((token, i) => {
    if (token === "*") return "[^.]+";
    if (token === ">") {
      if (i !== tokens.length - 1) {
        throw new TypeError(
          `Cannot subscribe to topic pattern "${topic}" as ">" may only be its last token: current position is ${
            i + 1
          } of ${tokens.length}`,
        );
      }
      return ".+";
    }
    if (/[*>]/.test(token)) {
      throw new TypeError(
        `Cannot subscribe to topic pattern "${topic}" as a wildcard must be a whole dot-separated token: current token is "${token}"`,
      );
    }
    return token.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
  });
  return new RegExp(`^${source.join("\\.")}$`);
}
