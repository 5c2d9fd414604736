/**
 * What the NATS Core and JetStream adapters share: the connection they open and close, the headers that carry the
 * message fields, decoding, and request/reply over an inbox. Internal to the adapters; `nats.ts` re-exports the two
 * public constants.
 * @module
 */
import { connect, createInbox, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { replyHeaders } from "../context_propagation.ts";
import type { Message, OutgoingMessage, RequestOptions } from "../message.ts";
import { NoRespondersError } from "../request_errors.ts";
import { assertOutgoing, assertPayloadSize, positiveInteger } from "./_arguments.ts";
import { awaitReply, respondOnce } from "./_request.ts";

/**
 * Bytes of a server's `max_payload` kept for headers (id, key, timestamp, context and caller headers): NATS counts
 * headers and payload against one limit, so the payload limit an adapter declares is `max_payload` minus this.
 *
 * @example The payload limit on a server with a 4 MiB max_payload
 * ```ts
 * import { NATS_HEADER_HEADROOM } from "./_nats.ts";
 * const maxMessageBytes = 4 * 1024 * 1024 - NATS_HEADER_HEADROOM;
 * ```
 */
export const NATS_HEADER_HEADROOM = 8 * 1024;

/**
 * NATS headers that carry the message fields NATS Core has no slot for. `Nats-Msg-Id` is the header JetStream
 * deduplicates on, so the same id survives a later move to JetStream.
 *
 * @example Read the message key off a raw NATS message
 * ```ts
 * import { headers } from "@nats-io/transport-node";
 * import { NatsMessageHeaders } from "./_nats.ts";
 * const h = headers();
 * h.set(NatsMessageHeaders.key, "order-1");
 * h.get(NatsMessageHeaders.key); // "order-1"
 * ```
 */
export const NatsMessageHeaders = Object.freeze({
  id: "Nats-Msg-Id",
  /** The message's id where `Nats-Msg-Id` is a deduplication id of its own (a redriven message on JetStream). */
  messageId: "Trellis-Msg-Id",
  key: "Trellis-Key",
  timestamp: "Trellis-Timestamp",
  /** Where a request stored in a JetStream stream is answered (the NATS reply subject does not survive storage). */
  replyTo: "Trellis-Reply-To",
});

/**
 * Opens the connection of an adapter that owns it. It reconnects for as long as it is open (nats.js gives up after
 * 10 attempts, about 20 s, and closes the connection for good by default): a broker that is back after a longer
 * outage finds its clients again, and until then `ping` fails and readiness says so, instead of the service being
 * left with a dead connection it never notices.
 *
 * @example
 * ```ts ignore
 * import { connectNats } from "./_nats.ts";
 * const nc = await connectNats("nats://127.0.0.1:4222", "trellis-orders");
 * await nc.close();
 * ```
 */
export function connectNats(servers: string | string[] | undefined, name: string): Promise<NatsConnection> {
  return connect({ servers: servers ?? "nats://127.0.0.1:4222", name, maxReconnectAttempts: -1 });
}

/**
 * The payload limit for an adapter on `nc`: `requested`, or the server's `max_payload` minus
 * {@linkcode NATS_HEADER_HEADROOM}; a `RangeError` when `requested` is not a positive integer or above `max_payload`.
 *
 * @example
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * import { natsPayloadLimit } from "./_nats.ts";
 * const nc = await connect();
 * natsPayloadLimit(nc, undefined, "create an adapter"); // 1040384 with a default server
 * ```
 */
export function natsPayloadLimit(nc: NatsConnection, requested: number | undefined, action: string): number {
  const serverMax = nc.info?.max_payload ?? 1024 * 1024;
  const limit = positiveInteger(requested ?? serverMax - NATS_HEADER_HEADROOM, action, "maxMessageBytes");
  if (limit > serverMax) {
    throw new RangeError(
      `Cannot ${action} as maxMessageBytes is above the server's max_payload of ${serverMax}: current value is ${limit}`,
    );
  }
  return limit;
}

/**
 * Decodes a NATS message (Core or JetStream) into a {@linkcode Message}: id, key and publish time come from
 * {@linkcode NatsMessageHeaders}, every other header but `replyTo` is passed through.
 *
 * @example
 * ```ts
 * import { headers } from "@nats-io/transport-node";
 * import { decodeNatsMessage, NatsMessageHeaders } from "./_nats.ts";
 * const h = headers();
 * h.set(NatsMessageHeaders.id, "m-1");
 * decodeNatsMessage(h, new Uint8Array([1]), 1).id; // "m-1"
 * ```
 */
export function decodeNatsMessage(
  raw: Iterable<[string, string[]]> | undefined,
  data: Uint8Array,
  attempt: number,
): Message {
  const headers: Record<string, string> = {};
  let id: string | undefined;
  let messageId: string | undefined;
  let key: string | undefined;
  let timestamp: number | undefined;
  if (raw) {
    for (const [k, values] of raw) {
      const v = values[0] ?? "";
      if (k === NatsMessageHeaders.id) id = v;
      else if (k === NatsMessageHeaders.messageId) messageId = v;
      else if (k === NatsMessageHeaders.key) key = v;
      else if (k === NatsMessageHeaders.timestamp) timestamp = Number(v) || undefined;
      else if (k !== NatsMessageHeaders.replyTo) headers[k] = v;
    }
  }
  // A plain view, not the Node `Buffer` subclass the transport hands out, so every adapter delivers the same type.
  const payload = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return {
    id: messageId ?? id ?? crypto.randomUUID(),
    key,
    headers,
    payload,
    attempt,
    timestamp: timestamp ?? Date.now(),
  };
}

/**
 * Waits for the reply to a request sent by `publish(inbox)` with `inbox` as its reply subject: subscribes to a fresh
 * inbox for one message first (so a reply cannot arrive before the interest), maps the server's no-responders status
 * to `NoRespondersError`, and removes the subscription when the wait ends for any reason. Shared by the NATS Core and
 * JetStream adapters; the wait itself follows `Publisher.request` (deadline, signals, `pending` for `close()`).
 *
 * @example A request on a raw connection
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * import { awaitNatsReply } from "./_nats.ts";
 * const nc = await connect();
 * const reply = await awaitNatsReply(nc, "pricing.quote", undefined, Date.now() + 500, new Set(), (inbox) => {
 *   nc.publish("pricing.quote", new TextEncoder().encode("sku-1"), { reply: inbox });
 * });
 * await nc.close();
 * ```
 */
export function awaitNatsReply(
  nc: NatsConnection,
  topic: string,
  options: RequestOptions | undefined,
  deadline: number | undefined,
  pending: Set<(err: unknown) => void>,
  publish: (inbox: string) => void | Promise<void>,
): Promise<Message> {
  return awaitReply(topic, options, deadline, pending, (answered, failed) => {
    const inbox = createInbox();
    const sub = nc.subscribe(inbox, {
      max: 1,
      callback: (err, m) => {
        if (err) return failed(err);
        // No-responders is a status message: code 503 and no payload.
        if (m.headers?.code === 503 && m.data.byteLength === 0) return failed(new NoRespondersError(topic));
        try {
          answered(decodeNatsMessage(m.headers, m.data, 1));
        } catch (decodeError) {
          failed(decodeError);
        }
      },
    });
    try {
      Promise.resolve(publish(inbox)).catch(failed);
    } catch (err) {
      failed(err);
    }
    return () => {
      if (!sub.isClosed()) sub.unsubscribe();
    };
  });
}

/**
 * The `respond` of a request that arrived over NATS with `replySubject` (see `Message.respond`): publishes the
 * response there, with the correlation and context headers of `reply`, once; resolves once the server has it.
 *
 * @example Answer a raw NATS request
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * import { natsResponder } from "./_nats.ts";
 * const nc = await connect();
 * nc.subscribe("pricing.quote", {
 *   callback: (_err, m) => {
 *     if (m.reply) natsResponder(nc, m.reply, "req-1", 1024)({ payload: new TextEncoder().encode("42") });
 *   },
 * });
 * ```
 */
export function natsResponder(
  nc: NatsConnection,
  replySubject: string,
  requestId: string,
  maxMessageBytes: number,
): (response: OutgoingMessage) => Promise<void> {
  return respondOnce(requestId, (response) => {
    assertOutgoing(response);
    assertPayloadSize(replySubject, response.payload, maxMessageBytes);
    const headers = encodeNatsHeaders(
      replyHeaders(requestId, response.headers),
      response.id ?? crypto.randomUUID(),
      response.key,
    );
    nc.publish(replySubject, response.payload, { headers });
    return nc.flush();
  });
}

/** NATS headers for `headers` plus the message fields of {@linkcode NatsMessageHeaders}. */
export function encodeNatsHeaders(headers: Record<string, string>, id: string, key: string | undefined) {
  const h = natsHeaders();
  for (const k in headers) h.set(k, headers[k]);
  h.set(NatsMessageHeaders.id, id);
  h.set(NatsMessageHeaders.timestamp, String(Date.now()));
  if (key !== undefined) h.set(NatsMessageHeaders.key, key);
  return h;
}

/**
 * Ends a connection an adapter owns, after its subscriptions closed: drains it (flushing what was published), or
 * closes it when the server is away and a drain cannot succeed, and waits until it is closed.
 *
 * @example
 * ```ts ignore
 * import { closeNatsConnection, connectNats } from "./_nats.ts";
 * await closeNatsConnection(await connectNats("nats://127.0.0.1:4222", "trellis-orders"));
 * ```
 */
export async function closeNatsConnection(nc: NatsConnection): Promise<void> {
  if (nc.isClosed()) return;
  // drain() fails while the server is away; close() still ends the connection, and its reconnecting.
  await nc.drain().catch(() => nc.close());
  await nc.closed();
}
