import { currentContext } from "../context/mod.ts";
import { errorResponse, HttpError, type Middleware } from "../http/mod.ts";
import { AuthError } from "./auth_error.ts";
import { type AuthAgent, bearerAgent } from "./agents.ts";
import type { Verifier } from "./verifier.ts";

/**
 * Options for {@linkcode authenticate}.
 *
 * @example Name the realm in challenges
 * ```ts
 * import { staticKeySet } from "./jwks.ts";
 * import { authenticate, type AuthenticateOptions } from "./middleware.ts";
 * import { createVerifier } from "./verifier.ts";
 * const options: AuthenticateOptions = { realm: "orders" };
 * const verifier = createVerifier({ issuer: "https://auth", audience: "orders", keys: staticKeySet([]) });
 * const middleware = authenticate(verifier, options);
 * ```
 */
export interface AuthenticateOptions {
  /** The `realm` in `WWW-Authenticate` challenges. @default {"trellis"} */
  realm?: string;
}

/**
 * Authenticates the request and sets `principal` on the current request context. Given a verifier it accepts
 * `Authorization: Bearer <jwt>`; given agents ({@linkcode bearerAgent}, `apiKeyAgent`, your own) it tries them in
 * order and the first that finds its kind of credentials decides. No credentials answer 401 with a bare challenge
 * per scheme; bad ones answer 401 with `error="invalid_token"`; keys that cannot be fetched answer 503. Bodies are
 * RFC 9457 problem+json.
 *
 * Needs a request context opened further out (`requestContext()`); without one it throws, since that is a wiring
 * mistake and not the client's.
 *
 * @example Protect a handler
 * ```ts
 * import { chain } from "../http/mod.ts";
 * import { requestContext } from "../http/mod.ts";
 * import { authenticate, requireScopes } from "./middleware.ts";
 * import { staticKeySet } from "./jwks.ts";
 * import { createVerifier } from "./verifier.ts";
 * const verifier = createVerifier({ issuer: "https://auth", audience: "orders", keys: staticKeySet([]) });
 * const handler = chain(requestContext(), authenticate(verifier), requireScopes("orders:read"))(
 *   async () => new Response("ok"),
 * );
 * ```
 */
export function authenticate(
  verifierOrAgents: Pick<Verifier, "verify"> | readonly AuthAgent[],
  options: AuthenticateOptions = {},
): Middleware {
  const realm = options.realm ?? "trellis";
  const agents = Array.isArray(verifierOrAgents)
    ? verifierOrAgents as readonly AuthAgent[]
    : [bearerAgent(verifierOrAgents as Pick<Verifier, "verify">)];
  if (agents.length === 0) throw new TypeError("Cannot authenticate with no agents: current value is []");
  const challenge = agents.map((a) => `${a.scheme} realm="${realm}"`).join(", ");
  return (next) =>
    async function authenticate(req) {
      const ctx = currentContext();
      if (!ctx) throw new Error("Cannot authenticate outside a request context: chain requestContext() before it");
      for (const agent of agents) {
        let principal;
        try {
          principal = await agent.authenticate(req);
        } catch (err) {
          const authErr = err instanceof AuthError
            ? err
            : new AuthError("invalid_token", "credentials rejected", { cause: err });
          return errorResponse(authErrorToHttp(authErr, agent.scheme, realm));
        }
        if (principal) {
          ctx.principal = principal;
          return await next(req);
        }
      }
      return errorResponse(
        new HttpError(401, "unauthorized", "Unauthorized", {
          detail: `credentials are required (${agents.map((a) => a.scheme).join(" or ")})`,
          headers: { "www-authenticate": challenge },
        }),
      );
    };
}

/**
 * Lets a request through only when the principal holds every one of `scopes`; otherwise 403 problem+json naming
 * the missing scopes, with an `insufficient_scope` challenge. Without a principal (no `authenticate()` before it)
 * it answers 401.
 *
 * @example
 * ```ts
 * import { requireScopes } from "./middleware.ts";
 * const canWrite = requireScopes("orders:write");
 * ```
 */
export function requireScopes(...scopes: string[]): Middleware {
  for (const scope of scopes) {
    if (!/^[\x21\x23-\x5b\x5d-\x7e]+$/.test(scope)) {
      throw new TypeError(`Cannot require scope ${JSON.stringify(scope)}: scopes are RFC 6749 tokens`);
    }
  }
  const realm = "trellis";
  return (next) =>
    async function requireScopes(req) {
      const principal = currentContext()?.principal;
      if (!principal) {
        return errorResponse(
          new HttpError(401, "unauthorized", "Unauthorized", {
            detail: "a bearer token is required",
            headers: { "www-authenticate": `Bearer realm="${realm}"` },
          }),
        );
      }
      const missing = scopes.filter((s) => !principal.scopes.includes(s));
      if (missing.length > 0) {
        return errorResponse(
          new HttpError(403, "insufficient-scope", "Insufficient scope", {
            detail: `missing scope: ${missing.join(" ")}`,
            extensions: { missingScopes: missing },
            headers: {
              "www-authenticate":
                `Bearer realm="${realm}", error="insufficient_scope", error_description="missing scope", scope="${
                  scopes.join(" ")
                }"`,
            },
          }),
        );
      }
      return await next(req);
    };
}

function authErrorToHttp(err: AuthError, scheme: string, realm: string): HttpError {
  if (err.error === "temporarily_unavailable") {
    return new HttpError(503, "auth-unavailable", "Authentication unavailable", {
      detail: err.description,
      headers: { "retry-after": "5" },
      cause: err,
    });
  }
  return new HttpError(err.status, "unauthorized", "Unauthorized", {
    detail: err.description,
    headers: {
      "www-authenticate": `${scheme} realm="${realm}", error="${err.error}", error_description="${err.description}"`,
    },
    cause: err,
  });
}
