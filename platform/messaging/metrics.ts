import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { ConsumerLag, MessageHandler, Publisher } from "./message.ts";
import type { HandlerMiddleware } from "./middleware/mod.ts";

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The messaging metric families of one registry, made by the first caller that asks, so several routers and
 * publishers of one service share them. Labels are the topic, the consumer group and an outcome: never a message id
 * or key.
 *
 * @example Count a publish by hand
 * ```ts
 * import { Registry } from "prom-client";
 * import { messagingMetrics } from "./metrics.ts";
 * const metrics = messagingMetrics(new Registry());
 * metrics.published.inc({ topic: "orders.events", outcome: "ok" });
 * ```
 */
export interface MessagingMetrics {
  /** `messaging_published_total{topic,outcome}`: publishes, `ok` or `error`. */
  published: Counter<"topic" | "outcome">;
  /** `messaging_consumed_total{topic,group,outcome}`: deliveries handled, `ack` or `nack` (back to the broker). */
  consumed: Counter<"topic" | "group" | "outcome">;
  /** `messaging_handler_duration_seconds{topic,group}`: one delivery, in-place retries included. */
  duration: Histogram<"topic" | "group">;
  /** `messaging_handler_failures_total{topic,group}`: deliveries whose handling failed (nack). */
  failures: Counter<"topic" | "group">;
  /** `messaging_redeliveries_total{topic,group}`: deliveries after the first of a message. */
  redeliveries: Counter<"topic" | "group">;
  /** `messaging_dead_lettered_total{topic}`: messages parked on their topic's dead-letter topic. */
  deadLettered: Counter<"topic">;
  /** `messaging_in_flight{topic,group}`: handlers running now. */
  inFlight: Gauge<"topic" | "group">;
}

const byRegistry = new WeakMap<Registry, MessagingMetrics>();

/**
 * The {@linkcode MessagingMetrics} registered on `registry`, registering them on first use.
 *
 * @example One set per registry
 * ```ts
 * import { Registry } from "prom-client";
 * import { messagingMetrics } from "./metrics.ts";
 * const registry = new Registry();
 * messagingMetrics(registry) === messagingMetrics(registry); // true
 * ```
 */
export function messagingMetrics(registry: Registry): MessagingMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  const registers = [registry];
  const consumer = ["topic", "group"] as const;
  m = {
    published: new Counter({
      name: "messaging_published_total",
      help: "Messages published, by topic and outcome (ok, error).",
      labelNames: ["topic", "outcome"] as const,
      registers,
    }),
    consumed: new Counter({
      name: "messaging_consumed_total",
      help: "Deliveries handled, by topic, consumer group and outcome (ack, nack).",
      labelNames: [...consumer, "outcome"] as const,
      registers,
    }),
    duration: new Histogram({
      name: "messaging_handler_duration_seconds",
      help: "Time to handle one delivery, in-place retries included, by topic and consumer group.",
      labelNames: consumer,
      buckets: BUCKETS,
      registers,
    }),
    failures: new Counter({
      name: "messaging_handler_failures_total",
      help: "Deliveries whose handling failed and went back to the broker, by topic and consumer group.",
      labelNames: consumer,
      registers,
    }),
    redeliveries: new Counter({
      name: "messaging_redeliveries_total",
      help: "Deliveries of a message after its first, by topic and consumer group.",
      labelNames: consumer,
      registers,
    }),
    deadLettered: new Counter({
      name: "messaging_dead_lettered_total",
      help: "Messages moved to the dead-letter topic of their source topic, by source topic.",
      labelNames: ["topic"] as const,
      registers,
    }),
    inFlight: new Gauge({
      name: "messaging_in_flight",
      help: "Message handlers running now, by topic and consumer group.",
      labelNames: consumer,
      registers,
    }),
  };
  byRegistry.set(registry, m);
  return m;
}

/**
 * Measures every delivery of one subscription on `registry`: consumed (ack or nack), duration, failures,
 * redeliveries (`msg.attempt > 1`) and handlers in flight. Put it outermost, so one delivery counts once however
 * often it is retried in place.
 *
 * @example Around a handler
 * ```ts
 * import { Registry } from "prom-client";
 * import { consumerMetrics } from "./metrics.ts";
 * const registry = new Registry();
 * const handler = consumerMetrics(registry, "orders.events", "billing")(async () => {});
 * await handler({ id: "m-1", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: Date.now() });
 * (await registry.metrics()).includes('outcome="ack"'); // true
 * ```
 */
export function consumerMetrics(registry: Registry, topic: string, group: string): HandlerMiddleware {
  const m = messagingMetrics(registry);
  const labels = { topic, group };
  const acked = m.consumed.labels({ ...labels, outcome: "ack" });
  const nacked = m.consumed.labels({ ...labels, outcome: "nack" });
  const duration = m.duration.labels(labels);
  const failures = m.failures.labels(labels);
  const redeliveries = m.redeliveries.labels(labels);
  const inFlight = m.inFlight.labels(labels);
  return (next: MessageHandler): MessageHandler =>
    async function consumerMetrics(msg) {
      if (msg.attempt > 1) redeliveries.inc();
      inFlight.inc();
      const start = performance.now();
      try {
        await next(msg);
        acked.inc();
      } catch (err) {
        nacked.inc();
        failures.inc();
        throw err;
      } finally {
        duration.observe((performance.now() - start) / 1000);
        inFlight.dec();
      }
    };
}

/**
 * `publisher`, counting each publish in `messaging_published_total{topic,outcome}` on `registry`. With
 * `deadLettersOf`, a publish also counts in `messaging_dead_lettered_total{topic}` under that source topic (the
 * router wraps its dead-letter publisher so).
 *
 * @example Count what a relay publishes
 * ```ts
 * import { Registry } from "prom-client";
 * import { createMemoryBroker } from "./adapters/memory.ts";
 * import { countPublishes } from "./metrics.ts";
 * const registry = new Registry();
 * const bus = createMemoryBroker();
 * await countPublishes(registry, bus).publish("orders.events", { payload: new Uint8Array() });
 * (await registry.metrics()).includes('messaging_published_total{topic="orders.events",outcome="ok"} 1'); // true
 * await bus.close();
 * ```
 */
export function countPublishes(registry: Registry, publisher: Publisher, deadLettersOf?: string): Publisher {
  const m = messagingMetrics(registry);
  const wrapped: Publisher = Object.create(publisher);
  wrapped.publish = async (topic, msg) => {
    try {
      await publisher.publish(topic, msg);
    } catch (err) {
      m.published.inc({ topic, outcome: "error" });
      throw err;
    }
    m.published.inc({ topic, outcome: "ok" });
    if (deadLettersOf !== undefined) m.deadLettered.inc({ topic: deadLettersOf });
  };
  return wrapped;
}

/**
 * Registers `messaging_consumer_lag_messages{topic,group,partition}` on `registry`, read at every scrape from each
 * subscription `lagOf` returns (those whose adapter can tell; see `Subscription.lag`). A subscription whose lag
 * cannot be read within 1 s is left out of that scrape.
 *
 * @example The lag of a router's subscriptions
 * ```ts
 * import { Registry } from "prom-client";
 * import { consumerLagGauge } from "./metrics.ts";
 * const registry = new Registry();
 * consumerLagGauge(registry, () => [{ group: "billing", lag: () => Promise.resolve([]) }]);
 * ```
 */
export function consumerLagGauge(
  registry: Registry,
  lagOf: LagSource,
): void {
  const known = lagSources.get(registry);
  if (known) {
    known.add(lagOf);
    return;
  }
  const sources = new Set([lagOf]);
  lagSources.set(registry, sources);
  new Gauge({
    name: "messaging_consumer_lag_messages",
    help: "Messages a consumer group has yet to handle, by topic and partition (empty where the broker has none).",
    labelNames: ["topic", "group", "partition"] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const reads: Promise<void>[] = [];
      for (const source of sources) {
        for (const { group, lag } of source()) {
          reads.push(
            withinSecond(lag()).then((lags) => {
              for (const l of lags ?? []) this.set({ topic: l.topic, group, partition: l.partition }, l.messages);
            }),
          );
        }
      }
      await Promise.all(reads);
    },
  });
}

type LagSource = () => Iterable<{ group: string; lag: () => Promise<readonly ConsumerLag[]> }>;
const lagSources = new WeakMap<Registry, Set<LagSource>>();

/** `p`'s value, or undefined when it rejects or takes longer than a second (a scrape must not hang on a broker). */
function withinSecond<T>(p: Promise<T>): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.catch(() => undefined),
    new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 1_000)),
  ]).finally(() => clearTimeout(timer));
}
