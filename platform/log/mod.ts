/**
 * Structured JSON logging.
 * @module
 */
export * from "./logger.ts";
export { registerSecret } from "./redact.ts";
