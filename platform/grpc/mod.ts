/**
 * gRPC on grpc-js with the platform's conventions: handlers are async functions running inside a request Context,
 * clients are promise-based and carry context, deadlines, service tokens and retries, errors are typed.
 * @module
 */
export * from "./errors.ts";
export * from "./server.ts";
export * from "./client.ts";
