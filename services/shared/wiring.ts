import { Gauge } from "prom-client";
import { createVerifier, type RemoteJwks, remoteJwks, type Verifier } from "@trellis/platform/auth";
import type { Database } from "@trellis/platform/db";
import type { MessageHandler, PubSub, SubscribeOptions } from "@trellis/platform/messaging";
import { chainHandlers, deadLetter, retry, timeout } from "@trellis/platform/messaging/middleware";
import { type PendingMessage, type Relay, startRelay } from "@trellis/platform/outbox";
import type { Service } from "@trellis/platform/service";
import type { SystemConfig } from "./config.ts";

/** The auth service's JWKS as a key set shared by one service's verifiers, with a readiness check on it. */
export function jwksFor(svc: Service, config: SystemConfig): RemoteJwks {
  const jwks = remoteJwks(`${config.authUrl}/.well-known/jwks.json`, { cooldownMs: config.jwksCooldownMs });
  svc.check("jwks", async () => {
    if (!(await jwks.ready())) throw new Error(`JWKS at ${config.authUrl} not fetched: ${jwks.lastError}`);
  });
  return jwks;
}

/**
 * A readiness check named `name` on a bus the service publishes to or consumes from: it gets the bus (connecting on
 * first use) and pings its broker (`PubSub.ping`), so `/readyz` names the bus while its broker does not answer and
 * turns ready again by itself once it does. A bus without `ping` counts as ready once connected.
 *
 * @example The buses of a service that consumes events and publishes jobs
 * ```ts ignore
 * checkBus(svc, "events", () => infra.events());
 * checkBus(svc, "jobs", () => infra.jobs());
 * ```
 */
export function checkBus(svc: Service, name: string, bus: () => Promise<PubSub>): void {
  svc.check(name, async (signal) => {
    await (await bus()).ping?.(signal);
  });
}

/** A verifier for tokens addressed to `audience`. */
export function verifierFor(config: SystemConfig, jwks: RemoteJwks, audience: string): Verifier {
  return createVerifier({ issuer: config.issuer, audience, keys: jwks });
}

/** How {@linkcode consume} guards a handler. */
export interface ConsumeOptions extends SubscribeOptions {
  /**
   * Longest one handler call may run; its context's signal aborts then and the call counts as failed. Below the
   * Kafka consumer's session timeout (10 s), so a stuck handler cannot get its consumer evicted. @default {5000}
   */
  timeoutMs?: number;
  /**
   * Calls per delivery before the failure goes back to the broker (redelivery, and after 5 deliveries the dead-letter
   * topic; or, on an at-most-once bus, the log): brief faults are absorbed in place. @default {3}
   */
  maxAttempts?: number;
}

/**
 * Subscribes `handler` from start to stop of `svc`, guarded per call by a timeout, retried in place with jittered
 * backoff, and dead-lettered after 5 deliveries where the bus redelivers.
 */
export function consume(
  svc: Service,
  bus: () => Promise<PubSub>,
  topic: string,
  handler: MessageHandler,
  options: ConsumeOptions,
): void {
  const { timeoutMs = 5_000, maxAttempts = 3, ...subscribeOptions } = options;
  svc.onStart(`consume ${topic}`, async () => {
    const pubsub = await bus();
    // Where redelivery exists, a message that keeps failing (or can never succeed, like one that breaks its schema)
    // goes to <topic>.dlq after 5 deliveries instead of blocking its key; at-most-once buses just drop failures.
    const guarded = chainHandlers(
      ...(pubsub.features.redelivery ? [deadLetter(topic, { publisher: pubsub, maxAttempts: 5 })] : []),
      retry({ maxAttempts }),
      timeout({ ms: timeoutMs }),
    )(handler);
    const sub = await pubsub.subscribe(topic, guarded, subscribeOptions);
    svc.onStop(`consume ${topic}`, () => sub.close());
  });
}

/**
 * Runs the outbox relay of `db` from start to stop of `svc`, publishing each row through `route(topic)`, and reports
 * it on `/metrics`: `outbox_backlog` (unpublished rows), `outbox_topic_failing{topic}` and
 * `outbox_database_reachable`. It is deliberately not a readiness check: while a broker is down the service still
 * takes writes, and keeping them until the broker is back is the outbox's job.
 */
export function relay(svc: Service, db: () => Database, route: (topic: string) => Promise<PubSub>): void {
  let running: Relay | undefined;
  const registers = [svc.registry];
  new Gauge({
    name: "outbox_backlog",
    help: "Outbox rows not yet published (NaN while the database does not answer within 1 s).",
    registers,
    async collect() {
      if (!running) return;
      const gaveUp = new AbortController();
      const timer = setTimeout(() => gaveUp.abort(), 1_000);
      try {
        const { backlog } = await running.status({ signal: gaveUp.signal });
        if (backlog === undefined) this.set(Number.NaN);
        else this.set(backlog);
      } finally {
        clearTimeout(timer);
      }
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
    const r = await startRelay(db(), {
      logger: svc.logger,
      publish: async (m: PendingMessage) => {
        await (await route(m.topic)).publish(m.topic, { id: m.id, key: m.key, headers: m.headers, payload: m.payload });
      },
    });
    running = r;
    svc.onStop("outbox relay", async () => {
      await r.stop();
      running = undefined;
    });
  });
}
