import { sizedResponse } from "./_bytes.ts";
import { currentContext } from "../context/mod.ts";
import { findDatabaseUnavailable } from "../db/mod.ts";
import { findCircuitOpen } from "../resilience/mod.ts";

/**
 * RFC 9457 problem details.
 *
 * @example Read a problem body a service sent
 * ```ts
 * import type { Problem } from "./problem.ts";
 * const res = Response.json({ type: "https://trellis.dev/problems/not-found", title: "Not found", status: 404 });
 * const problem: Problem = await res.json();
 * problem.status; // 404
 * ```
 */
export interface Problem {
  /** Stable URI reference naming the problem kind. */
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  requestId?: string;
  [extension: string]: unknown;
}

const TYPE_BASE = "https://trellis.dev/problems/";

/**
 * An error that leaves a service as a problem+json response with its status. Throw it from handlers.
 *
 * @example
 * ```ts
 * import { HttpError } from "./problem.ts";
 * const err = new HttpError(404, "not-found", "Order not found", { detail: "no order o-1" });
 * ```
 */
export class HttpError extends Error {
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail?: string;
  readonly extensions: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    type: string,
    title: string,
    options: {
      detail?: string;
      extensions?: Record<string, unknown>;
      headers?: Record<string, string>;
      cause?: unknown;
    } = {},
  ) {
    super(options.detail ?? title, { cause: options.cause });
    this.name = "HttpError";
    this.status = status;
    this.type = type;
    this.title = title;
    this.detail = options.detail;
    this.extensions = options.extensions ?? {};
    this.headers = options.headers ?? {};
  }
}

/**
 * 400 with a detail.
 *
 * @example Refuse a query parameter
 * ```ts
 * import { badRequest } from "./problem.ts";
 * const err = badRequest("limit must be at most 100", { parameter: "limit" });
 * err.status; // 400
 * ```
 */
export const badRequest = (detail: string, extensions?: Record<string, unknown>): HttpError =>
  new HttpError(400, "bad-request", "Bad request", { detail, extensions });
/**
 * 404 with a detail.
 *
 * @example No such order
 * ```ts
 * import { notFound } from "./problem.ts";
 * const err = notFound("no order o-1");
 * err.status; // 404
 * ```
 */
export const notFound = (detail: string): HttpError => new HttpError(404, "not-found", "Not found", { detail });
/**
 * 422 listing every invalid field.
 *
 * @example Report every invalid field at once
 * ```ts
 * import { unprocessable } from "./problem.ts";
 * const err = unprocessable([{ path: "/items/0/quantity", reason: "must be at least 1" }]);
 * err.detail; // "/items/0/quantity: must be at least 1"
 * ```
 */
export const unprocessable = (errors: { path: string; reason: string }[]): HttpError =>
  new HttpError(422, "validation", "Request does not match the schema", {
    detail: errors.map((e) => `${e.path}: ${e.reason}`).join("; "),
    extensions: { errors },
  });

/**
 * A problem+json response. The request id of the current context is added when there is one.
 *
 * @example
 * ```ts
 * import { problemResponse } from "./problem.ts";
 * const res = problemResponse(404, "not-found", "Not found", { detail: "no such order" });
 * ```
 */
export function problemResponse(
  status: number,
  type: string,
  title: string,
  options: { detail?: string; instance?: string; extensions?: Record<string, unknown>; headers?: HeadersInit } = {},
): Response {
  const body: Problem = { type: type.includes(":") ? type : TYPE_BASE + type, title, status };
  if (options.detail !== undefined) body.detail = options.detail;
  if (options.instance !== undefined) body.instance = options.instance;
  const requestId = currentContext()?.requestId;
  if (requestId) body.requestId = requestId;
  Object.assign(body, options.extensions);
  const headers = new Headers(options.headers);
  headers.set("content-type", "application/problem+json");
  return sizedResponse(JSON.stringify(body), { status, headers });
}

/**
 * Maps any thrown value to a problem response: `HttpError`s keep their status; a `DatabaseUnavailableError` or a
 * `CircuitOpenError` (a dependency's circuit breaker is open), or an error caused by one, is a 503 with `Retry-After`;
 * anything else is a 500 that reveals nothing of its internals. Every 503 carries `Retry-After` (1 s unless the error,
 * or the `CircuitOpenError` behind it, says otherwise), so clients back off instead of hammering.
 *
 * @example
 * ```ts
 * import { HttpError, errorResponse } from "./problem.ts";
 * errorResponse(new HttpError(409, "conflict", "Conflict")).status; // 409
 * errorResponse(new HttpError(503, "upstream", "Upstream failure")).headers.get("retry-after"); // "1"
 * ```
 */
export function errorResponse(err: unknown, instance?: string): Response {
  if (err instanceof HttpError) {
    const headers = err.status === 503 && !hasRetryAfter(err.headers)
      ? { ...err.headers, "retry-after": retryAfterSeconds(findCircuitOpen(err)?.retryAfterMs ?? 0) }
      : err.headers;
    return problemResponse(err.status, err.type, err.title, {
      detail: err.detail,
      instance,
      extensions: err.extensions,
      headers,
    });
  }
  const unavailable = findDatabaseUnavailable(err);
  if (unavailable) {
    return problemResponse(503, "unavailable", "Service unavailable", {
      detail: "the service's database cannot be reached; retry later",
      instance,
      headers: { "retry-after": retryAfterSeconds(unavailable.retryAfterMs) },
    });
  }
  const open = findCircuitOpen(err);
  if (open) {
    return problemResponse(503, "unavailable", "Service unavailable", {
      detail: `a service this one depends on (${open.target}) is unavailable; retry later`,
      instance,
      headers: { "retry-after": retryAfterSeconds(open.retryAfterMs) },
    });
  }
  return problemResponse(500, "internal", "Internal server error", { instance });
}

/** `Retry-After` delay-seconds for a wait in milliseconds: at least 1, so clients never retry at once. */
function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)));
}

function hasRetryAfter(headers: Record<string, string>): boolean {
  for (const name in headers) if (name.toLowerCase() === "retry-after") return true;
  return false;
}
