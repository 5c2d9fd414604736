import { Gauge } from "prom-client";
import type { Database } from "../db/mod.ts";
import { messagingMetrics, type Publisher } from "../messaging/mod.ts";
import type { Service } from "../service/mod.ts";
import { withService } from "../telemetry/mod.ts";
import { type PendingMessage, type Relay, type RelayOptions, type RelayStatus, startRelay } from "./relay.ts";

/**
 * Options for {@linkcode relayFor}: those of {@linkcode startRelay}, less what the service provides.
 *
 * @example Smaller batches and a quicker retry of a failing topic
 * ```ts
 * import type { RelayForOptions } from "./relay_for.ts";
 * const options: RelayForOptions = { batchSize: 20, baseDelayMs: 50, maxDelayMs: 2_000 };
 * ```
 */
export type RelayForOptions = Omit<RelayOptions, "publish" | "logger">;

/**
 * Runs the outbox relay of `db` from start to stop of `svc` (logging to `svc.logger`), publishing each row, as it
 * was enqueued, through the publisher `route(topic)` resolves to, and reports it on `/metrics`: `outbox_backlog`
 * (unpublished rows; NaN while the database does not answer within 1 s), `outbox_oldest_unpublished_age_seconds`,
 * `messaging_published_total{topic,outcome}`, `outbox_topic_failing{topic}` and
 * `outbox_database_reachable`. It is deliberately not a readiness check: while a broker is down the service still
 * takes writes, and keeping them until the broker is back is the outbox's job.
 *
 * `db` may be a getter, for a database the service opens in an earlier start hook; `route` is called per message, so
 * it may connect a bus on first use.
 *
 * @example Saga events to Kafka, receipts' notices to JetStream
 * ```ts ignore
 * relayFor(svc, () => db, (topic) => topic === "order.confirmed" ? infra.jobs() : infra.events());
 * ```
 */
export function relayFor(
  svc: Service,
  db: Database | (() => Database),
  route: (topic: string) => Promise<Publisher>,
  options: RelayForOptions = {},
): void {
  const database = typeof db === "function" ? db : () => db;
  let running: Relay | undefined;
  const registers = [svc.registry];
  const { published } = messagingMetrics(svc.registry);
  // One count query per scrape, shared by the gauges that read it (a scrape starts their collects together).
  let counting: Promise<RelayStatus | undefined> | undefined;
  const counted = () =>
    counting ??= (async () => {
      if (!running) return undefined;
      // A timer cleared when the count answers, so a scrape leaves nothing pending behind it.
      const gaveUp = new AbortController();
      const timer = setTimeout(() => gaveUp.abort(), 1_000);
      try {
        return await running.status({ signal: gaveUp.signal });
      } finally {
        clearTimeout(timer);
      }
    })().finally(() => counting = undefined);
  new Gauge({
    name: "outbox_backlog",
    help: "Outbox rows not yet published (NaN while the database does not answer within 1 s).",
    registers,
    async collect() {
      const status = await counted();
      if (status) this.set(status.backlog ?? Number.NaN);
    },
  });
  new Gauge({
    name: "outbox_oldest_unpublished_age_seconds",
    help: "Age of the oldest outbox row not yet published, 0 when none (NaN while the database does not answer).",
    registers,
    async collect() {
      const status = await counted();
      if (status) this.set(status.oldestAgeSeconds ?? Number.NaN);
    },
  });
  new Gauge({
    name: "outbox_topic_failing",
    help: "1 for each topic whose outbox publishes are failing (backed off) or stalled.",
    labelNames: ["topic"] as const,
    registers,
    async collect() {
      this.reset();
      for (const topic of (await running?.status({ backlog: false }))?.failingTopics ?? []) this.set({ topic }, 1);
    },
  });
  new Gauge({
    name: "outbox_database_reachable",
    help: "0 while the outbox relay's sweeps fail to reach its database, else 1.",
    registers,
    async collect() {
      const status = await running?.status({ backlog: false });
      if (status) this.set(status.databaseReachable ? 1 : 0);
    },
  });
  svc.onStart("outbox relay", async () => {
    // In the service's scope, so the relay's spans are attributed to it (one process may host several services).
    const relay = await withService(svc.name, () =>
      startRelay(database(), {
        ...options,
        logger: svc.logger,
        publish: async (m: PendingMessage) => {
          const { topic, ...msg } = m;
          try {
            await (await route(topic)).publish(topic, msg);
          } catch (err) {
            published.inc({ topic, outcome: "error" });
            throw err;
          }
          published.inc({ topic, outcome: "ok" });
        },
      }));
    running = relay;
    svc.onStop("outbox relay", async () => {
      await relay.stop();
      running = undefined;
    });
  });
}
