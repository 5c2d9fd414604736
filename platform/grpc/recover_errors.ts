import type { Context } from "../context/mod.ts";
import { findDatabaseUnavailable } from "../db/mod.ts";
import type { Logger } from "../log/mod.ts";
import { findCircuitOpen } from "../resilience/mod.ts";
import { DeadlineExceededError, GrpcError, status, UnavailableError } from "./errors.ts";
import type { ServerInterceptor } from "./interceptor.ts";

/**
 * The {@linkcode GrpcError} a client gets for `err`, thrown by a handler running in `ctx`: a `GrpcError` as it is;
 * after the context's signal aborted, `DEADLINE_EXCEEDED` (a timeout) or `CANCELLED`; a database that cannot be
 * reached, or a dependency whose circuit breaker is open (`CircuitOpenError`), `UNAVAILABLE` (the callee's transient
 * state, which callers may retry later: the gateway answers 503);
 * anything else `INTERNAL` with a generic message, the original as its `cause`. For interceptors that observe
 * outcomes (metrics) wherever they sit in the chain.
 *
 * @example The status of a plain error
 * ```ts
 * import { status, toGrpcError } from "./mod.ts";
 * const ctx = { requestId: "r-1", signal: new AbortController().signal };
 * toGrpcError(new Error("boom"), ctx).code === status.INTERNAL; // true
 * ```
 */
export function toGrpcError(err: unknown, ctx: Context): GrpcError {
  if (err instanceof GrpcError) return err;
  if (ctx.signal.aborted) {
    const timedOut = (ctx.signal.reason as Error | undefined)?.name === "TimeoutError";
    return timedOut
      ? new DeadlineExceededError("deadline exceeded", { cause: err })
      : new GrpcError(status.CANCELLED, "cancelled", { cause: err });
  }
  if (findDatabaseUnavailable(err)) return new UnavailableError("database unavailable", { cause: err });
  const open = findCircuitOpen(err);
  if (open) {
    return new UnavailableError(`a dependency is unavailable (circuit for ${open.target} open)`, { cause: err });
  }
  return new GrpcError(status.INTERNAL, "internal error", { cause: err });
}

/**
 * Options for {@linkcode recoverErrors}.
 *
 * @example Log unexpected failures with the service's logger
 * ```ts
 * import { createLogger } from "../log/mod.ts";
 * import { recoverErrors, type RecoverErrorsOptions } from "./mod.ts";
 * const options: RecoverErrorsOptions = { logger: createLogger("orders", { write: () => {} }) };
 * const interceptor = recoverErrors(options);
 * ```
 */
export interface RecoverErrorsOptions {
  /** Where unexpected failures (those answered `INTERNAL`) are logged with their stack. @default {undefined} (not logged) */
  logger?: Logger;
}

/**
 * Turns whatever the rest of the chain throws into the {@linkcode GrpcError} the client gets (see
 * {@linkcode toGrpcError}), so no internals leave the server, and logs the unexpected ones. `serveGrpc` puts it
 * outermost in every chain.
 *
 * @example Log unexpected failures
 * ```ts
 * import { createLogger } from "../log/mod.ts";
 * import { recoverErrors } from "./mod.ts";
 * const interceptor = recoverErrors({ logger: createLogger("orders", { write: () => {} }) });
 * ```
 */
export function recoverErrors(options: RecoverErrorsOptions = {}): ServerInterceptor {
  const { logger } = options;
  return (next) =>
    async function recoverErrors(call) {
      try {
        return await next(call);
      } catch (err) {
        const mapped = toGrpcError(err, call.ctx);
        if (mapped !== err && mapped.code === status.INTERNAL) {
          logger?.error("grpc handler failed", { method: call.method, error: err });
        }
        throw mapped;
      }
    };
}
