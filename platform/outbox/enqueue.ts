import { ContextHeaders, contextHeaders } from "../context/mod.ts";
import { activeTraceparent, inSpan, SpanKind, tracingEnabled } from "../telemetry/mod.ts";
import type { Tx } from "../db/mod.ts";
import type { OutgoingMessage } from "../messaging/mod.ts";

/**
 * The migrations that create this package's tables (`outbox`: `seq` gives publish order, payloads are UTF-8 text;
 * `inbox`: one row per consumer and message id). Apply them in each database that uses the package, before the
 * service's own, with their own bookkeeping table.
 *
 * @example Apply them before the service's own migrations
 * ```ts ignore
 * await migrate(db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
 * ```
 */
export const OUTBOX_MIGRATIONS: { readonly dir: URL; readonly table: string } = Object.freeze({
  dir: new URL("./migrations/", import.meta.url),
  table: "outbox_schema_migrations",
});

/**
 * Channel the relay listens on; {@linkcode enqueue} notifies it on commit.
 *
 * @example Wake the relay by hand after rows were inserted some other way
 * ```ts ignore
 * await db.query("select pg_notify($1, '')", [OUTBOX_CHANNEL]);
 * ```
 */
export const OUTBOX_CHANNEL = "trellis_outbox";

/**
 * A message to publish to `topic` once the surrounding transaction commits: an {@linkcode OutgoingMessage} exactly as
 * the relay will hand it to the publisher, so the bytes and headers are decided once, by whoever encoded it (services
 * use the schema package's `encodeMessage`). The payload must be UTF-8 text (JSON, as every encoder here writes).
 *
 * @example An encoded event for the outbox
 * ```ts
 * import type { OutboxMessage } from "./enqueue.ts";
 * const msg: OutboxMessage = {
 *   topic: "orders.events",
 *   key: "o-1",
 *   headers: { "content-type": "application/json" },
 *   payload: new TextEncoder().encode('{"type":"orders.created.v1","orderId":"o-1"}'),
 * };
 * ```
 */
export interface OutboxMessage extends OutgoingMessage {
  topic: string;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Writes a message to the outbox in the caller's transaction, so it is published if and only if the transaction
 * commits, with the payload and headers it was given (no second encoding). The current context's request id and
 * traceparent travel in its headers (the message's own headers win); its deadline does not, because the message
 * outlives the request that caused it. Resolves with the message id (a new UUID when `msg.id` is absent).
 *
 * @example Record an order and its event in one transaction
 * ```ts ignore
 * await db.transaction(async (tx) => {
 *   await tx.query("insert into orders (id) values ($1)", [id]);
 *   await enqueue(tx, { topic: "orders.events", ...encodeMessage(events, { type: "orders.created.v1", orderId: id }, { key: id }) });
 * });
 * ```
 */
export function enqueue(tx: Tx, msg: OutboxMessage): Promise<string> {
  if (!tracingEnabled) return enqueueNow(tx, msg);
  const attributes = { "messaging.destination.name": msg.topic };
  return inSpan(`outbox write ${msg.topic}`, { kind: SpanKind.PRODUCER, attributes }, () => enqueueNow(tx, msg));
}

async function enqueueNow(tx: Tx, msg: OutboxMessage): Promise<string> {
  if (!(msg.payload instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot enqueue a message as its payload is not encoded bytes (a Uint8Array): current type is ${typeof msg
        .payload}`,
    );
  }
  let payload: string;
  try {
    payload = utf8.decode(msg.payload);
  } catch (err) {
    throw new TypeError(
      `Cannot enqueue a message as its payload is not UTF-8 text: current value is ${msg.payload.byteLength} bytes`,
      { cause: err },
    );
  }
  const id = msg.id ?? crypto.randomUUID();
  const { [ContextHeaders.deadline]: _deadline, ...inherited } = contextHeaders();
  // With tracing on, the row carries this write's span, so the relay's publish continues the trace from here.
  const traceparent = activeTraceparent();
  if (traceparent) inherited[ContextHeaders.traceparent] = traceparent;
  const headers = { ...inherited, ...msg.headers };
  await tx.query(
    "insert into outbox (id, topic, key, headers, payload) values ($1, $2, $3, $4, $5)",
    [id, msg.topic, msg.key ?? null, headers, payload],
  );
  await tx.query("select pg_notify($1, '')", [OUTBOX_CHANNEL]);
  return id;
}
