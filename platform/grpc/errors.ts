import { status as grpcStatus } from "@grpc/grpc-js";

/**
 * The gRPC status codes: grpc-js's `status` enum itself, re-exported so callers need no grpc-js import. Use it as a
 * value (`status.NOT_FOUND`) and as the type of a code; `status[code]` names a code.
 *
 * @example Name the code an error carries
 * ```ts
 * import { GrpcError, status } from "./mod.ts";
 * const err = new GrpcError(status.NOT_FOUND, "order o-1 not found");
 * const name = status[err.code]; // "NOT_FOUND"
 * ```
 */
export const status = grpcStatus;
/** A gRPC status code, one of the members of {@linkcode status}. */
export type status = grpcStatus;

/**
 * A failure with a gRPC status code. Thrown by a handler it keeps its code and message on the wire; returned by the
 * client (as this class or one of its subclasses) it carries the code the server answered with.
 *
 * @example Reject a request from a handler
 * ```ts
 * import { GrpcError, status } from "./errors.ts";
 * const err = new GrpcError(status.FAILED_PRECONDITION, "order is already cancelled");
 * ```
 */
export class GrpcError extends Error {
  /** The gRPC status code. */
  readonly code: status;

  /** Creates an error with `code`, a message safe to show the caller, and an optional local `cause`. */
  constructor(code: status, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "GrpcError";
    this.code = code;
  }
}

/**
 * `NOT_FOUND`: the requested entity does not exist.
 *
 * @example
 * ```ts
 * import { NotFoundError } from "./errors.ts";
 * const err = new NotFoundError("order o-1 not found");
 * ```
 */
export class NotFoundError extends GrpcError {
  /** Creates a `NOT_FOUND` error. */
  constructor(message = "not found", options?: ErrorOptions) {
    super(status.NOT_FOUND, message, options);
    this.name = "NotFoundError";
  }
}

/**
 * `INVALID_ARGUMENT`: the request is malformed regardless of system state.
 *
 * @example
 * ```ts
 * import { InvalidArgumentError } from "./errors.ts";
 * const err = new InvalidArgumentError("items must not be empty");
 * ```
 */
export class InvalidArgumentError extends GrpcError {
  /** Creates an `INVALID_ARGUMENT` error. */
  constructor(message = "invalid argument", options?: ErrorOptions) {
    super(status.INVALID_ARGUMENT, message, options);
    this.name = "InvalidArgumentError";
  }
}

/**
 * `UNAVAILABLE`: the service cannot be reached or is shutting down; safe to retry idempotent calls.
 *
 * @example
 * ```ts
 * import { UnavailableError } from "./errors.ts";
 * const err = new UnavailableError("draining");
 * ```
 */
export class UnavailableError extends GrpcError {
  /** Creates an `UNAVAILABLE` error. */
  constructor(message = "unavailable", options?: ErrorOptions) {
    super(status.UNAVAILABLE, message, options);
    this.name = "UnavailableError";
  }
}

/**
 * `DEADLINE_EXCEEDED`: the call's deadline passed before it completed.
 *
 * @example
 * ```ts
 * import { DeadlineExceededError } from "./errors.ts";
 * const err = new DeadlineExceededError();
 * ```
 */
export class DeadlineExceededError extends GrpcError {
  /** Creates a `DEADLINE_EXCEEDED` error. */
  constructor(message = "deadline exceeded", options?: ErrorOptions) {
    super(status.DEADLINE_EXCEEDED, message, options);
    this.name = "DeadlineExceededError";
  }
}

/**
 * `UNAUTHENTICATED`: the call carried no valid credentials.
 *
 * @example
 * ```ts
 * import { UnauthenticatedError } from "./errors.ts";
 * const err = new UnauthenticatedError("missing bearer token");
 * ```
 */
export class UnauthenticatedError extends GrpcError {
  /** Creates an `UNAUTHENTICATED` error. */
  constructor(message = "unauthenticated", options?: ErrorOptions) {
    super(status.UNAUTHENTICATED, message, options);
    this.name = "UnauthenticatedError";
  }
}

/**
 * `PERMISSION_DENIED`: the caller is known but not allowed to do this.
 *
 * @example
 * ```ts
 * import { PermissionDeniedError } from "./errors.ts";
 * const err = new PermissionDeniedError("scope orders:write required");
 * ```
 */
export class PermissionDeniedError extends GrpcError {
  /** Creates a `PERMISSION_DENIED` error. */
  constructor(message = "permission denied", options?: ErrorOptions) {
    super(status.PERMISSION_DENIED, message, options);
    this.name = "PermissionDeniedError";
  }
}

/**
 * The most specific error class for `code`: {@linkcode NotFoundError} for `NOT_FOUND` and so on, otherwise a plain
 * {@linkcode GrpcError}.
 *
 * @example
 * ```ts
 * import { grpcError, NotFoundError, status } from "./errors.ts";
 * grpcError(status.NOT_FOUND, "gone") instanceof NotFoundError; // true
 * ```
 */
export function grpcError(code: status, message: string, options?: ErrorOptions): GrpcError {
  switch (code) {
    case status.NOT_FOUND:
      return new NotFoundError(message, options);
    case status.INVALID_ARGUMENT:
      return new InvalidArgumentError(message, options);
    case status.UNAVAILABLE:
      return new UnavailableError(message, options);
    case status.DEADLINE_EXCEEDED:
      return new DeadlineExceededError(message, options);
    case status.UNAUTHENTICATED:
      return new UnauthenticatedError(message, options);
    case status.PERMISSION_DENIED:
      return new PermissionDeniedError(message, options);
    default:
      return new GrpcError(code, message, options);
  }
}

const HTTP_STATUS: Record<status, number> = {
  [status.OK]: 200,
  [status.CANCELLED]: 499,
  [status.UNKNOWN]: 500,
  [status.INVALID_ARGUMENT]: 400,
  [status.DEADLINE_EXCEEDED]: 504,
  [status.NOT_FOUND]: 404,
  [status.ALREADY_EXISTS]: 409,
  [status.PERMISSION_DENIED]: 403,
  [status.RESOURCE_EXHAUSTED]: 429,
  [status.FAILED_PRECONDITION]: 400,
  [status.ABORTED]: 409,
  [status.OUT_OF_RANGE]: 400,
  [status.UNIMPLEMENTED]: 501,
  [status.INTERNAL]: 500,
  [status.UNAVAILABLE]: 503,
  [status.DATA_LOSS]: 500,
  [status.UNAUTHENTICATED]: 401,
};

/**
 * The HTTP status a gateway should answer with for a gRPC status code (the mapping of Google's `google.rpc.Code`
 * docs); unknown codes map to 500.
 *
 * @example
 * ```ts
 * import { grpcToHttpStatus, status } from "./errors.ts";
 * grpcToHttpStatus(status.NOT_FOUND); // 404
 * ```
 */
export function grpcToHttpStatus(code: status): number {
  return HTTP_STATUS[code] ?? 500;
}
