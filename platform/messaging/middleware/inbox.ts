import type { Message } from "../message.ts";
import type { HandlerMiddleware } from "./chain.ts";

/** Options for {@linkcode inbox}: the store of handled message ids. */
export interface InboxOptions {
  /** Whether the message with this id was handled already. */
  seen(id: string, msg: Message): Promise<boolean>;
  /** Records that the message with this id was handled; called only after the handler succeeded. */
  remember(id: string, msg: Message): Promise<void>;
  /** The id to deduplicate on. @default {(msg) => msg.id} */
  idOf?: (msg: Message) => string;
}

/**
 * Makes a consumer idempotent over an inbox store: a message whose id was `seen` is acknowledged without calling the
 * handler; otherwise the handler runs and the id is remembered after it succeeded. Between the handler's success and
 * `remember` a crash still means a second run (at-least-once); where the effect and the inbox live in one database,
 * record both in one transaction instead (`platform/outbox`'s `claimOnce`).
 *
 * @example Deduplicate in memory
 * ```ts
 * import { inbox } from "./inbox.ts";
 * const handled = new Set<string>();
 * const handler = inbox({
 *   seen: (id) => Promise.resolve(handled.has(id)),
 *   remember: (id) => Promise.resolve(void handled.add(id)),
 * })(async (msg) => console.log("first time", msg.id));
 * ```
 */
export function inbox(options: InboxOptions): HandlerMiddleware {
  const { seen, remember } = options;
  if (typeof seen !== "function" || typeof remember !== "function") {
    throw new TypeError(
      `Cannot create inbox middleware as seen and remember must be functions: current types are ${typeof seen} and ${typeof remember}`,
    );
  }
  const idOf = options.idOf ?? ((msg: Message) => msg.id);
  return (next) =>
    async function inboxHandler(msg) {
      const id = idOf(msg);
      if (await seen(id, msg)) return;
      await next(msg);
      await remember(id, msg);
    };
}
