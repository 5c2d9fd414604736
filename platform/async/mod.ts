/**
 * Waiting: exponential backoff and an abortable delay, shared by every client and consumer that retries.
 * @module
 */
export * from "./backoff.ts";
