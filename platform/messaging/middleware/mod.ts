/**
 * Consumer middleware on the `MessageHandler` shape (`(next) => handler`, composed with
 * `chainHandlers`), and the headers `deadLetter` adds (the dead-letter operations are `openDeadLetterQueue` in
 * `@trellis/platform/messaging`). The idempotent-consumer middleware is
 * `inbox` in `@trellis/platform/outbox`: it claims the message id in the same transaction as the handler's effect.
 *
 * @example Wire a consumer's middleware in one place
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { chainHandlers, concurrencyLimit, deadLetter, retry, timeout } from "./mod.ts";
 * const bus = createMemoryBroker();
 * const handler = chainHandlers(
 *   deadLetter("orders.events", { publisher: bus, maxAttempts: 5 }),
 *   concurrencyLimit({ max: 8 }),
 *   retry({ maxAttempts: 3 }),
 *   timeout({ ms: 5_000 }),
 * )(async (msg) => console.log(msg.id));
 * await bus.subscribe("orders.events", handler, { group: "payments", concurrency: 8 });
 * await bus.close();
 * ```
 * @module
 */
export * from "./chain.ts";
export * from "./timeout.ts";
export * from "./retry.ts";
export * from "./dead_letter.ts";
export * from "./concurrency_limit.ts";
export * from "./dead_letter_queue.ts";
