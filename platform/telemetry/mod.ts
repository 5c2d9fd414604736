/**
 * Tracing on Deno's built-in OpenTelemetry (`OTEL_DENO=true`): helpers that make `@opentelemetry/api` spans for
 * every hop, continue a W3C `traceparent`, and attribute spans to a service when one process hosts several. With
 * tracing off they call through. The receiver lives in `@trellis/platform/telemetry/receiver`.
 * @module
 */
export * from "./spans.ts";
export * from "./sql.ts";
