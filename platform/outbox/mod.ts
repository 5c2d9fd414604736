/**
 * Transactional outbox (publish if and only if the transaction commits), its relay and the relay's wiring into a
 * `Service`, and the transactional inbox (an idempotent consumer whose claim commits with its effect).
 *
 * @example Publish an event with an order, once the transaction commits
 * ```ts ignore
 * import { enqueue, relayFor } from "./mod.ts";
 * relayFor(svc, () => db, () => infra.events());
 * await db.transaction(async (tx) => {
 *   await tx.query("insert into orders (id) values ($1)", [id]);
 *   await enqueue(tx, { topic: "orders.events", key: id, payload: new TextEncoder().encode(JSON.stringify(event)) });
 * });
 * ```
 * @module
 */
export * from "./enqueue.ts";
export * from "./claim_once.ts";
export * from "./inbox.ts";
export * from "./relay.ts";
export * from "./relay_for.ts";
