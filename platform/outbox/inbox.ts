import { AsyncLocalStorage } from "node:async_hooks";
import type { Database, Tx } from "../db/mod.ts";
import type { Message } from "../messaging/mod.ts";
import type { HandlerMiddleware } from "../messaging/middleware/mod.ts";
import { claimOnce } from "./claim_once.ts";

/**
 * Options for {@linkcode inbox}.
 *
 * @example Deduplicate on an event id the producer put in a header
 * ```ts
 * import type { InboxOptions } from "./inbox.ts";
 * const options: InboxOptions = { idOf: (msg) => msg.headers["event-id"] ?? msg.id };
 * ```
 */
export interface InboxOptions {
  /** The id to deduplicate on. @default {(msg) => msg.id} */
  idOf?: (msg: Message) => string;
}

const claimed = new AsyncLocalStorage<Tx>();

/**
 * Makes a consumer idempotent on the transactional inbox: each call of the handler runs inside one transaction of
 * `db` that first claims the message id for `consumer` (the `inbox` table, as {@linkcode claimOnce}); a message
 * already claimed is acknowledged without calling the handler. The handler reaches the transaction through
 * {@linkcode inboxTx}, so its effect, the rows it {@linkcode enqueue}s and the claim commit together, or roll back
 * together when it throws (and a redelivery runs it again): no crash window between handling and remembering.
 *
 * `db` may be a getter, for a database a service opens in a start hook. Place it inside `retry` and `timeout` (the
 * message router does), so every attempt gets a fresh transaction bounded by the timeout's signal.
 *
 * @example Reserve stock once per command
 * ```ts ignore
 * router.subscribe("inventory.commands", async (msg) => {
 *   await inboxTx().query("update stock set reserved = reserved + 1 where sku = $1", [sku]);
 * }, { group: "inventory", middleware: [inbox(() => db, "inventory")] });
 * ```
 */
export function inbox(
  db: Database | (() => Database),
  consumer: string,
  options: InboxOptions = {},
): HandlerMiddleware {
  if (typeof consumer !== "string" || consumer === "") {
    throw new TypeError(
      `Cannot create inbox middleware as the consumer is not a non-empty string: current value is ${consumer}`,
    );
  }
  const database = typeof db === "function" ? db : () => db;
  const idOf = options.idOf ?? ((msg: Message) => msg.id);
  return (next) =>
    async function inboxHandler(msg) {
      const id = idOf(msg);
      await database().transaction(async (tx) => {
        if (!(await claimOnce(tx, consumer, id))) return;
        await claimed.run(tx, () => next(msg));
      });
    };
}

/**
 * The transaction in which the {@linkcode inbox} middleware claimed the message being handled; write the handler's
 * effect through it so it commits with the claim. Throws a `TypeError` outside such a handler.
 *
 * @example Enqueue the reply in the claim's transaction
 * ```ts ignore
 * const handler = async (msg: Message) => {
 *   await enqueue(inboxTx(), { topic: "inventory.events", ...reply });
 * };
 * ```
 */
export function inboxTx(): Tx {
  const tx = claimed.getStore();
  if (!tx) throw new TypeError("Cannot get the inbox transaction as no inbox() middleware is handling a message here");
  return tx;
}
