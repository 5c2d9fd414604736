import type { Metadata } from "@grpc/grpc-js";
import type { Principal } from "../context/mod.ts";
import type { Logger } from "../log/mod.ts";
import { GrpcError, PermissionDeniedError, UnauthenticatedError } from "./errors.ts";
import type { ServerInterceptor } from "./interceptor.ts";

/**
 * Decides whether a call may proceed, from its metadata and method path (`/trellis.orders.v1.OrdersService/GetOrder`).
 * Return the caller's {@linkcode Principal} (it becomes `ctx.principal`) or `true` to allow; return `false`/`undefined`
 * to answer `UNAUTHENTICATED`; throw to answer `PERMISSION_DENIED` (a thrown {@linkcode GrpcError} keeps its code).
 * It runs inside the call's context, so `currentContext()` works.
 *
 * @example Allow calls that carry a bearer token
 * ```ts
 * import type { Authorize } from "./mod.ts";
 * const hasToken: Authorize = (metadata) => String(metadata.get("authorization")[0] ?? "").startsWith("Bearer ");
 * ```
 */
export type Authorize = (
  metadata: Metadata,
  method: string,
) => Principal | boolean | undefined | Promise<Principal | boolean | undefined>;

/**
 * Options for {@linkcode authorization}.
 *
 * @example Log denials with the service's logger
 * ```ts
 * import { createLogger } from "../log/mod.ts";
 * import { authorization, type AuthorizationOptions } from "./mod.ts";
 * const options: AuthorizationOptions = { logger: createLogger("orders", { write: () => {} }) };
 * const interceptor = authorization((metadata) => metadata.get("authorization").length > 0, options);
 * ```
 */
export interface AuthorizationOptions {
  /** Where denials (an `authorize` that threw something other than a `GrpcError`) are logged. @default {undefined} (not logged) */
  logger?: Logger;
}

/**
 * Runs `authorize` before the rest of the chain: a call it refuses gets `UNAUTHENTICATED` or `PERMISSION_DENIED`
 * (see {@linkcode Authorize}) without reaching the handler; the principal it returns becomes `ctx.principal`.
 *
 * @example Only callers sending the shared secret
 * ```ts
 * import { authorization, type ServerInterceptor } from "./mod.ts";
 * const interceptor: ServerInterceptor = authorization((metadata) =>
 *   metadata.get("authorization")[0] === "Bearer s3cret" ? { sub: "ops", scopes: [] } : false
 * );
 * ```
 */
export function authorization(authorize: Authorize, options: AuthorizationOptions = {}): ServerInterceptor {
  const { logger } = options;
  return (next) =>
    async function authorization(call) {
      let verdict: Principal | boolean | undefined;
      try {
        verdict = await authorize(call.metadata, call.method);
      } catch (err) {
        if (err instanceof GrpcError) throw err;
        logger?.warn("grpc call denied", { method: call.method, error: err });
        throw new PermissionDeniedError("permission denied", { cause: err });
      }
      if (!verdict) throw new UnauthenticatedError("missing or invalid credentials");
      if (verdict !== true) call.ctx.principal = verdict;
      return await next(call);
    };
}
