/**
 * Headers the `deadLetter()` middleware adds to a dead letter, and a redrive (`openDeadLetterQueue(...).redrive()` of
 * `@trellis/platform/messaging`) counts redrives in.
 *
 * @example Say why a dead letter was parked
 * ```ts
 * import type { Message } from "../message.ts";
 * import { DeadLetterHeaders } from "./dead_letter_queue.ts";
 * const why = (letter: Message) =>
 *   `${letter.headers[DeadLetterHeaders.sourceTopic]} after ${letter.headers[DeadLetterHeaders.attempts]} ` +
 *   `deliveries: ${letter.headers[DeadLetterHeaders.error]}`;
 * why({
 *   id: "m-1",
 *   headers: { "dlq-source-topic": "orders.events", "dlq-attempts": "5", "dlq-error": "Error: no such order" },
 *   payload: new Uint8Array(),
 *   attempt: 1,
 *   timestamp: 0,
 * }); // "orders.events after 5 deliveries: Error: no such order"
 * ```
 */
export const DeadLetterHeaders = Object.freeze({
  /** The last error, `Name: message`, on one line and truncated. */
  error: "dlq-error",
  /** The delivery (`msg.attempt`) that failed last. */
  attempts: "dlq-attempts",
  /** The topic the message failed on, where a redrive sends it back. */
  sourceTopic: "dlq-source-topic",
  /** When it was dead-lettered, ISO 8601. */
  failedAt: "dlq-failed-at",
  /** The original message's id, which a redriven message gets back. */
  messageId: "dlq-message-id",
  /** How often the message was redriven; kept across dead-lettering. */
  redrives: "dlq-redrives",
});
