/**
 * A small OTLP/HTTP trace receiver for local runs and tests: decodes what Deno's exporter sends (protobuf or JSON),
 * keeps the last N traces in memory and serves them as JSON (`GET /api/traces/{traceId}`, `GET /api/traces`).
 * @module
 */
export * from "./receiver.ts";
export type { AttributeValue } from "./otlp.ts";
