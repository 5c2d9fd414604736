/**
 * HTTP on web-standard `Request`/`Response`: handlers, middleware, routing, problem+json errors, JSON binding, and a
 * service-to-service client.
 * @module
 */
export * from "./handler.ts";
export * from "./problem.ts";
export * from "./json.ts";
export * from "./router.ts";
export * from "./middleware.ts";
export * from "./body_limit.ts";
export * from "./cors.ts";
export * from "./security_headers.ts";
export * from "./rate_limit.ts";
export * from "./tracing.ts";
export * from "./client.ts";
export * from "./url.ts";
export { knownBodyBytes } from "./_bytes.ts";
export * from "./resilient_http.ts";
export * from "./idempotency.ts";
export * from "./postgres_idempotency_store.ts";
