import { delay } from "../async/backoff.ts";
import { ContextHeaders, contextHeaders } from "../context/context.ts";
import type { Database, Tx } from "../db/db.ts";
import type { Logger } from "../log/logger.ts";

/**
 * The migrations that create this package's tables (`outbox`: `seq` gives publish order, payloads are UTF-8 JSON
 * text; `inbox`: one row per consumer and message id). Apply them in each database that uses the package, before the
 * service's own, with their own bookkeeping table.
 *
 * @example
 * ```ts ignore
 * await migrate(db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
 * ```
 */
export const OUTBOX_MIGRATIONS: { readonly dir: URL; readonly table: string } = Object.freeze({
  dir: new URL("./migrations/", import.meta.url),
  table: "outbox_schema_migrations",
});

/** Channel the relay listens on; `enqueue` notifies it on commit. */
export const OUTBOX_CHANNEL = "trellis_outbox";

/** A message to publish once the surrounding transaction commits. */
export interface OutboxMessage {
  topic: string;
  key?: string;
  headers?: Record<string, string>;
  /** JSON-serialisable event body. */
  payload: unknown;
  /** Message id; a UUID when omitted. */
  id?: string;
}

/**
 * Writes a message to the outbox in the caller's transaction, so it is published if and only if the transaction
 * commits. The current context's request id and traceparent travel in its headers; its deadline does not, because
 * the message outlives the request that caused it.
 *
 * @example
 * ```ts ignore
 * await db.transaction(async (tx) => {
 *   await tx.query("insert into orders (id) values ($1)", [id]);
 *   await enqueue(tx, { topic: "orders.events", key: id, payload: { type: "OrderCreated", id } });
 * });
 * ```
 */
export async function enqueue(tx: Tx, msg: OutboxMessage): Promise<string> {
  const id = msg.id ?? crypto.randomUUID();
  const { [ContextHeaders.deadline]: _deadline, ...inherited } = contextHeaders();
  const headers = { ...inherited, ...msg.headers };
  await tx.query(
    "insert into outbox (id, topic, key, headers, payload) values ($1, $2, $3, $4::jsonb, $5)",
    [id, msg.topic, msg.key ?? null, JSON.stringify(headers), JSON.stringify(msg.payload)],
  );
  await tx.query("select pg_notify($1, '')", [OUTBOX_CHANNEL]);
  return id;
}

/**
 * Records that `consumer` handled `messageId`, in the caller's transaction. Returns false when it already had: the
 * caller then skips the message (an idempotent consumer).
 *
 * @example
 * ```ts ignore
 * await db.transaction(async (tx) => {
 *   if (!(await claimOnce(tx, "inventory", msg.id))) return;
 *   // ... apply the command and enqueue its result
 * });
 * ```
 */
export async function claimOnce(tx: Tx, consumer: string, messageId: string): Promise<boolean> {
  const rows = await tx.query(
    "insert into inbox (consumer, message_id) values ($1, $2) on conflict do nothing returning message_id",
    [consumer, messageId],
  );
  return rows.length === 1;
}

/** A row read back for publishing. */
export interface PendingMessage {
  id: string;
  topic: string;
  key?: string;
  headers: Record<string, string>;
  payload: Uint8Array;
}

/** Options for {@linkcode startRelay}. */
export interface RelayOptions {
  /** Publishes one message; throwing leaves it (and everything after it) for the next attempt. */
  publish: (msg: PendingMessage) => Promise<void>;
  log: Logger;
  /** Rows per transaction. @default {100} */
  batchSize?: number;
  /** Poll interval when no notification arrives (notifications can be lost across reconnects). @default {1000} */
  pollMs?: number;
  /** How long published rows are kept. @default {3600000} */
  retainMs?: number;
}

/** A running relay. */
export interface Relay {
  /** Stops after the batch in flight; idempotent. */
  stop(): Promise<void>;
}

/**
 * Publishes outbox rows in `seq` order, woken by `NOTIFY` and by a poll timer. Rows are locked with
 * `FOR UPDATE SKIP LOCKED`, so several relays can run; a row is marked published only after `publish` resolved
 * (at-least-once: a crash between the two publishes it again, and consumers deduplicate on the id).
 *
 * @example
 * ```ts ignore
 * const relay = await startRelay(db, { publish: (m) => publisher.publish(m.topic, m), log });
 * await relay.stop();
 * ```
 */
export async function startRelay(db: Database, options: RelayOptions): Promise<Relay> {
  const batchSize = options.batchSize ?? 100;
  const pollMs = options.pollMs ?? 1000;
  const retainMs = options.retainMs ?? 3_600_000;
  let running = true;
  const stopping = new AbortController();
  let wake: (() => void) | undefined;
  let pending = true;
  const poke = () => {
    pending = true;
    wake?.();
  };
  const unlisten = await db.listen(OUTBOX_CHANNEL, poke);
  const enc = new TextEncoder();
  let lastPurge = 0;

  const drainOnce = () =>
    db.transaction(async (tx) => {
      const rows = await tx.query<
        { seq: string; id: string; topic: string; key: string | null; headers: Record<string, string>; payload: string }
      >(
        `select seq, id, topic, key, headers, payload from outbox where published_at is null
         order by seq limit $1 for update skip locked`,
        [batchSize],
      );
      for (const r of rows) {
        await options.publish({
          id: r.id,
          topic: r.topic,
          key: r.key ?? undefined,
          headers: typeof r.headers === "string" ? JSON.parse(r.headers) : r.headers,
          payload: enc.encode(r.payload),
        });
      }
      if (rows.length > 0) {
        await tx.query("update outbox set published_at = now() where seq = any($1::bigint[])", [
          rows.map((r) => r.seq),
        ]);
      }
      return rows.length;
    });

  const loop = (async () => {
    let backoff = 100;
    while (running) {
      try {
        pending = false;
        const n = await drainOnce();
        backoff = 100;
        if (n === batchSize) continue;
        if (Date.now() - lastPurge > 60_000) {
          lastPurge = Date.now();
          await db.query("delete from outbox where published_at < now() - $1::interval", [`${retainMs} milliseconds`]);
        }
      } catch (err) {
        if (!running) break;
        options.log.warn("outbox relay failed; retrying", { err, backoffMs: backoff });
        await delay(backoff, stopping.signal).catch(() => {});
        backoff = Math.min(backoff * 2, 5_000);
        continue;
      }
      if (pending || !running) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  })();

  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        running = false;
        stopping.abort();
        wake?.();
        await loop;
        await unlisten();
      })();
      return stopped;
    },
  };
}
