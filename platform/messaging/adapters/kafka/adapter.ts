import { createLogger, type Logger } from "../../../log/mod.ts";
import { outgoingHeaders } from "../../context_propagation.ts";
import { createLimiter } from "../../limiter.ts";
import type { Features, MessageHandler, OutgoingMessage, SubscribeOptions, Subscription } from "../../message.ts";
import { assertSendable, assertTopic, concurrencyOf, positiveInteger } from "../_arguments.ts";
import { sharedProbe } from "../_probe.ts";
import type { FetchedRecord, KafkaClient } from "./driver.ts";
import { superviseConsumer } from "./engine.ts";
import { kafkaDeadLetterStore } from "../../dlq/kafka_store.ts";
import {
  type EnsureTopicsOptions,
  kafkaConsumerSettings,
  kafkaFeatures,
  KafkaMessageHeaders,
  type KafkaPubSub,
  type KafkaPubSubOptions,
  topicPattern,
} from "./settings.ts";

/**
 * What a Kafka adapter's client is built from: the adapter's options with their defaults filled in.
 *
 * @example Name a client in a log line
 * ```ts
 * import type { KafkaClientSettings } from "./adapter.ts";
 * const describe = (s: KafkaClientSettings) => `${s.clientId} on ${s.brokers.join(",")}`;
 * ```
 */
export interface KafkaClientSettings {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** The consumer settings the client library takes itself. */
  consumer: ReturnType<typeof kafkaConsumerSettings>["client"];
}

/**
 * The {@linkcode KafkaPubSub} both Kafka adapters are: argument checks, the message envelope, subscriptions run by
 * the consumer engine (`engine.ts`) on the client's drivers, pings and closing, over the client `connect` makes.
 *
 * @example An adapter over a client library (see kafkajs.ts and platformatic.ts for real ones)
 * ```ts ignore
 * import { createKafkaAdapter } from "./adapter.ts";
 * const bus = createKafkaAdapter({}, (settings) => myKafkaClient(settings));
 * ```
 */
export function createKafkaAdapter<R extends FetchedRecord>(
  options: KafkaPubSubOptions,
  connect: (settings: KafkaClientSettings) => KafkaClient<R>,
): KafkaPubSub {
  const logger = options.logger ?? createLogger("messaging");
  const redelivery = { baseDelayMs: 100, maxDelayMs: 2000, ...options.redelivery };
  const { client: consumer, ...buffering } = kafkaConsumerSettings(options.consumer);
  const maxMessageBytes = positiveInteger(
    options.maxMessageBytes ?? kafkaFeatures.maxMessageBytes,
    "create a Kafka adapter",
    "maxMessageBytes",
  );
  const client = connect({
    brokers: options.brokers ?? ["127.0.0.1:9092"],
    clientId: options.clientId ?? "trellis",
    logger,
    consumer,
  });
  const features: Features = Object.freeze({ ...kafkaFeatures, maxMessageBytes });
  const subscriptions = new Set<Subscription>();
  let closing: Promise<void> | undefined;
  const assertOpen = (action: string) => {
    if (closing) throw new Error(`Cannot ${action} as the Kafka adapter is closed`);
  };
  const roundTrip = sharedProbe(() => client.roundTrip());

  const subscribe = async (topic: string, handler: MessageHandler, opts?: SubscribeOptions) => {
    assertTopic(topic, "subscribe");
    const pattern = topicPattern(topic);
    const concurrency = concurrencyOf(opts);
    if (!opts?.group) {
      throw new TypeError(
        `Cannot subscribe to Kafka topic "${topic}" without a consumer group: options.group is required, current value is ${opts?.group}`,
      );
    }
    assertOpen(`subscribe to "${topic}"`);
    const group = opts.group;
    const subscription = superviseConsumer<R>({
      topic,
      pattern,
      group,
      handler,
      limiter: createLimiter(concurrency),
      ...buffering,
      maxBufferedMessages: Math.max(buffering.maxBufferedMessages, concurrency),
      redelivery,
      logger,
      driver: (sink) => client.consumer(group, sink),
      listTopics: () => client.listTopics(),
      onClosed: () => subscriptions.delete(subscription),
    });
    subscriptions.add(subscription);
    try {
      await subscription.ready;
    } catch (err) {
      await subscription.close();
      throw err;
    }
    return subscription;
  };

  return {
    features,
    subscribe,
    deadLetters: kafkaDeadLetterStore(client),

    ping(signal?: AbortSignal): Promise<void> {
      if (closing) return Promise.reject(new Error("Cannot ping as the Kafka adapter is closed"));
      return roundTrip(signal);
    },

    async ensureTopics(topics: string[], opts: EnsureTopicsOptions = {}): Promise<void> {
      for (const topic of topics) assertTopic(topic, "ensure topics");
      assertOpen("ensure topics");
      await client.ensureTopics(topics, opts.partitions ?? 1, opts.replicationFactor ?? 1);
    },

    publish(topic: string, out: OutgoingMessage): Promise<void> {
      try {
        assertSendable("publish", topic, out, maxMessageBytes);
        assertOpen(`publish to "${topic}"`);
      } catch (err) {
        return Promise.reject(err);
      }
      const headers = outgoingHeaders(out.headers);
      headers[KafkaMessageHeaders.id] = out.id ?? crypto.randomUUID();
      return client.send(topic, out.key, out.payload, headers);
    },

    close(): Promise<void> {
      closing ??= (async () => {
        await Promise.all([...subscriptions].map((s) => s.close()));
        await client.close();
      })();
      return closing;
    },
  };
}
