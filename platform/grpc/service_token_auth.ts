import { AuthError, serviceTokenSource, type ServiceTokenSourceOptions, type Verifier } from "../auth/mod.ts";
import { ContextHeaders, currentContext } from "../context/mod.ts";
import type { Authorize } from "./authorization.ts";
import { PermissionDeniedError, UnauthenticatedError, UnavailableError } from "./errors.ts";

/**
 * Authorizes internal calls: each must carry a bearer service token that `verifier` accepts (so addressed to this
 * service) with the `internal` scope; its principal becomes `ctx.principal`. With `endUsers`, an `x-end-user-token`
 * sent beside it (see {@linkcode endUserToken}) is verified too and becomes `ctx.endUser`. No token answers
 * `UNAUTHENTICATED`, as does a token the verifier refuses; a valid token without the scope answers
 * `PERMISSION_DENIED`. Use it with {@linkcode authorization} or as `serveGrpc({ authorize })`.
 *
 * @example Accept service tokens addressed to orders
 * ```ts
 * import { createVerifier, generateSigningKey, staticKeySet } from "../auth/mod.ts";
 * import { authorization, serviceTokenAuthorizer } from "./mod.ts";
 *
 * const key = await generateSigningKey();
 * const verifier = createVerifier({ issuer: "https://auth", audience: "orders", keys: staticKeySet([key]) });
 * const interceptor = authorization(serviceTokenAuthorizer(verifier));
 * ```
 */
export function serviceTokenAuthorizer(verifier: Verifier, endUsers?: Verifier): Authorize {
  return async function serviceTokenAuthorizer(metadata) {
    const header = String(metadata.get("authorization")[0] ?? "");
    if (!header.startsWith("Bearer ")) return false;
    try {
      const principal = await verifier.verify(header.slice(7));
      if (!principal.scopes.includes("internal")) throw new PermissionDeniedError("the internal scope is required");
      const userToken = metadata.get(ContextHeaders.endUserToken)[0];
      if (endUsers && typeof userToken === "string") currentContext()!.endUser = await endUsers.verify(userToken);
      return principal;
    } catch (err) {
      if (err instanceof AuthError) throw new UnauthenticatedError(err.description);
      throw err;
    }
  };
}

/**
 * A cached client-credentials token source (`serviceTokenSource` from platform/auth) for calls to
 * `options.audience`. Failing to get a token means the auth service is unavailable to us, so it fails with
 * {@linkcode UnavailableError} (retryable; 503 at an HTTP edge) rather than an internal error. Give it to
 * `createGrpcClient(def, address, { token })`.
 *
 * @example Tokens for the gateway's calls to orders
 * ```ts
 * import { createGrpcClient, serviceTokens } from "./mod.ts";
 * import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const token = serviceTokens({
 *   tokenUrl: "http://auth.internal/oauth/token",
 *   clientId: "gateway",
 *   clientSecret: "s3cret",
 *   audience: "orders",
 * });
 * using orders = createGrpcClient(OrdersServiceService, "127.0.0.1:50051", { token });
 * ```
 */
export function serviceTokens(options: ServiceTokenSourceOptions): () => Promise<string> {
  const source = serviceTokenSource(options);
  return async function serviceToken() {
    try {
      return await source();
    } catch (err) {
      throw new UnavailableError(`cannot get a service token for ${options.audience}`, { cause: err });
    }
  };
}
