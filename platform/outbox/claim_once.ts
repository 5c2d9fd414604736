import type { Tx } from "../db/mod.ts";

/**
 * Records that `consumer` handled `messageId`, in the caller's transaction. Returns false when it already had: the
 * caller then skips the message (an idempotent consumer). The claim commits with the caller's effect or rolls back
 * with it, so there is no window in which one happened without the other. The {@linkcode inbox} middleware does this
 * for a whole handler.
 *
 * @example Apply a command once per message id
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
