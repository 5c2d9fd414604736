/**
 * Service lifecycle: two-phase start, readiness checks, graceful drain on SIGTERM/SIGINT, RED metrics.
 * @module
 */
export * from "./service.ts";
export * from "./metrics.ts";
