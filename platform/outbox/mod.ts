/**
 * Transactional outbox (publish if and only if the transaction commits) and idempotent-consumer inbox.
 * @module
 */
export * from "./outbox.ts";
