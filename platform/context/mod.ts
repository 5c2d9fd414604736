/**
 * Request-scoped context (request id, deadline signal, trace context, principal) carried across `await`s.
 * @module
 */
export * from "./context.ts";
export * from "./deadline_timer.ts";
