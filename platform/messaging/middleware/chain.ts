import type { MessageHandler } from "../message.ts";

/**
 * Decorates a message handler (go-kit's shape, so a middleware such as {@linkcode retry} can call `next` more than
 * once). Throwing from the returned handler rejects the message, returning acknowledges it, as for any handler.
 *
 * @example Log every message before handling it
 * ```ts
 * import type { HandlerMiddleware } from "./chain.ts";
 * const logged: HandlerMiddleware = (next) =>
 *   async function logged(msg) {
 *     console.log("handling", msg.id, msg.attempt);
 *     await next(msg);
 *   };
 * ```
 */
export type HandlerMiddleware = (next: MessageHandler) => MessageHandler;

/**
 * Composes handler middleware, outermost first: `chainHandlers(a, b)(h)` runs `a`, then `b`, then `h` (as
 * `platform/http`'s `chain`).
 *
 * @example Dead-letter after retries, each attempt with a deadline
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { chainHandlers } from "./chain.ts";
 * import { deadLetter } from "./dead_letter.ts";
 * import { retry } from "./retry.ts";
 * import { timeout } from "./timeout.ts";
 * const bus = createMemoryBroker();
 * const handler = chainHandlers(
 *   deadLetter("orders.events", { publisher: bus, maxAttempts: 5 }),
 *   retry({ maxAttempts: 3 }),
 *   timeout({ ms: 2_000 }),
 * )(async (msg) => console.log(msg.id));
 * const sub = await bus.subscribe("orders.events", handler, { group: "payments" });
 * await sub.close();
 * await bus.close();
 * ```
 */
export function chainHandlers(...middleware: HandlerMiddleware[]): (handler: MessageHandler) => MessageHandler {
  return (handler) => middleware.reduceRight((next, mw) => mw(next), handler);
}
