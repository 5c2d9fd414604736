/**
 * HTTP on web-standard `Request`/`Response`: handlers, middleware, routing, problem+json errors, JSON binding.
 * @module
 */
export * from "./handler.ts";
export * from "./problem.ts";
export * from "./json.ts";
export * from "./router.ts";
export * from "./middleware.ts";
