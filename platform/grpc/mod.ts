/**
 * gRPC on grpc-js with the platform's conventions: handlers are async functions running inside a request Context,
 * clients are promise-based and carry context, deadlines, service tokens and retries, errors are typed. Cross-cutting
 * concerns are interceptors in one decorator shape on both sides (`ServerInterceptor`, `ClientInterceptor`), like
 * HTTP middleware: error recovery, authorization (service tokens), metrics, deadlines, tokens, retries.
 * @module
 */
export * from "./errors.ts";
export * from "./interceptor.ts";
export * from "./server.ts";
export * from "./recover_errors.ts";
export * from "./authorization.ts";
export * from "./client.ts";
export * from "./client_interceptors.ts";
export * from "./metrics.ts";
export * from "./tracing.ts";
export * from "./service_token_auth.ts";
export * from "./serve_with.ts";
