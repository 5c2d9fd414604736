import { isHopeless, isTransient } from "./_hopeless.ts";
import { DeadLetterHeaders } from "./dead_letter_queue.ts";
import type { Message, Publisher } from "../message.ts";
import type { HandlerMiddleware } from "./chain.ts";

/**
 * Options for {@linkcode deadLetter}.
 *
 * @example Park order events on `dead.<topic>` after the third failed delivery
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { deadLetter, type DeadLetterOptions } from "./dead_letter.ts";
 * const bus = createMemoryBroker();
 * const options: DeadLetterOptions = {
 *   publisher: bus,
 *   topic: (source) => `dead.${source}`,
 *   maxAttempts: 3,
 *   maxErrorLength: 256,
 * };
 * const handler = deadLetter("orders.events", options)(() => {
 *   throw new Error("cannot parse");
 * });
 * await handler({ id: "m-1", headers: {}, payload: new Uint8Array(), attempt: 3, timestamp: 0 }); // parked, no throw
 * await bus.close();
 * ```
 */
export interface DeadLetterOptions {
  /** Where dead letters are published. */
  publisher: Publisher;
  /** The dead-letter topic of a source topic. @default {(source) => `${source}.dlq`} */
  topic?: (source: string) => string;
  /** The delivery (`msg.attempt`) whose failure dead-letters the message. @default {5} */
  maxAttempts?: number;
  /** Longest `dlq-error` header, in characters; longer messages are cut. @default {1024} */
  maxErrorLength?: number;
  /** Epoch milliseconds now, for `dlq-failed-at`. @default {Date.now} */
  now?: () => number;
}

/**
 * Moves a poison message out of the way: when the handler throws on delivery `maxAttempts` or later (or throws an
 * error with `retryable: false`, such as a `SchemaError`, on any delivery), the message is
 * published to the dead-letter topic (its original id in a new message, original key, payload and headers, plus the
 * {@linkcode DeadLetterHeaders}) and the delivery is acknowledged, so the partition (Kafka) or key (in-memory broker)
 * moves on. Earlier failures are rethrown and redelivered as usual. If publishing the dead letter fails, that error
 * is thrown (wrapped, with the publish failure as its `cause`), so the message is redelivered rather than lost.
 *
 * A handler does not know its topic, so the source topic is the first argument: use one middleware per subscription.
 * Put it outermost, so it sees what {@linkcode retry} and {@linkcode timeout} finally threw. With JetStream, keep
 * `maxAttempts` at most the adapter's `maxDeliver`, which otherwise terminates the message first.
 *
 * @example Dead-letter an order event after its fifth failed delivery
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { deadLetter } from "./dead_letter.ts";
 * const bus = createMemoryBroker();
 * const handler = deadLetter("orders.events", { publisher: bus, maxAttempts: 5 })(async (msg) => {
 *   JSON.parse(new TextDecoder().decode(msg.payload));
 * });
 * const sub = await bus.subscribe("orders.events", handler, { group: "payments" });
 * await sub.close();
 * await bus.close();
 * ```
 */
export function deadLetter(sourceTopic: string, options: DeadLetterOptions): HandlerMiddleware {
  if (typeof sourceTopic !== "string" || sourceTopic === "") {
    throw new TypeError(
      `Cannot create deadLetter middleware as the source topic is not a non-empty string: current value is ${sourceTopic}`,
    );
  }
  const maxAttempts = options.maxAttempts ?? 5;
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) {
    throw new RangeError(
      `Cannot create deadLetter middleware as maxAttempts is not a positive integer: current value is ${maxAttempts}`,
    );
  }
  const maxErrorLength = options.maxErrorLength ?? 1024;
  const now = options.now ?? Date.now;
  const dlqTopic = (options.topic ?? ((source: string) => `${source}.dlq`))(sourceTopic);
  const { publisher } = options;
  return (next) =>
    async function deadLetterHandler(msg: Message) {
      try {
        await next(msg);
      } catch (err) {
        if (isTransient(err) || (msg.attempt < maxAttempts && !isHopeless(err))) throw err;
        try {
          await publisher.publish(dlqTopic, {
            key: msg.key,
            payload: msg.payload,
            headers: {
              ...msg.headers,
              [DeadLetterHeaders.error]: errorHeader(err, maxErrorLength),
              [DeadLetterHeaders.attempts]: String(msg.attempt),
              [DeadLetterHeaders.sourceTopic]: sourceTopic,
              [DeadLetterHeaders.failedAt]: new Date(now()).toISOString(),
              [DeadLetterHeaders.messageId]: msg.id,
            },
          });
        } catch (publishErr) {
          throw new Error(`Cannot dead-letter message ${msg.id} to "${dlqTopic}"`, { cause: publishErr });
        }
      }
    };
}

/** One line (NATS headers cannot carry line breaks), at most `max` characters. */
function errorHeader(err: unknown, max: number): string {
  const text = (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).replace(/\p{Cc}+/gu, " ");
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}
