import type { Principal } from "../context/mod.ts";
import { AuthError } from "./auth_error.ts";
import type { Verifier } from "./verifier.ts";

/**
 * One way of authenticating a request (a bearer JWT, an API key, ...). {@linkcode authenticate} tries its agents in
 * order; the first that finds its kind of credentials decides.
 *
 * @example An agent trusting a header set by a sidecar
 * ```ts
 * import type { AuthAgent } from "./agents.ts";
 * const sidecar: AuthAgent = {
 *   scheme: "Sidecar",
 *   authenticate: (req) => {
 *     const sub = req.headers.get("x-authenticated-sub");
 *     return Promise.resolve(sub === null ? undefined : { sub, scopes: [] });
 *   },
 * };
 * await sidecar.authenticate(new Request("http://api/")); // undefined: not this agent's kind
 * ```
 */
export interface AuthAgent {
  /** The `WWW-Authenticate` scheme this agent challenges with, e.g. `Bearer`. */
  readonly scheme: string;
  /**
   * `undefined` when the request carries no credentials of this agent's kind; the principal when they are valid.
   * Throws {@linkcode AuthError} when they are present but invalid.
   */
  authenticate(req: Request): Promise<Principal | undefined>;
}

/**
 * Authenticates `Authorization: Bearer <jwt>` with a verifier. An `Authorization` header of another scheme is not
 * this agent's business (`undefined`); `Bearer` with nothing after it, or with something that is not an RFC 6750
 * `b64token`, is: it throws `invalid_token` without consulting the verifier (the client did try to authenticate, so
 * it gets an error code rather than a bare challenge).
 *
 * @example
 * ```ts
 * import { bearerAgent } from "./agents.ts";
 * import { staticKeySet } from "./jwks.ts";
 * import { createVerifier } from "./verifier.ts";
 * const agent = bearerAgent(createVerifier({ issuer: "https://auth", audience: "api", keys: staticKeySet([]) }));
 * ```
 */
export function bearerAgent(verifier: Pick<Verifier, "verify">): AuthAgent {
  return {
    scheme: "Bearer",
    authenticate(req) {
      const header = req.headers.get("authorization");
      if (header === null || !/^bearer(?: |$)/i.test(header)) return Promise.resolve(undefined);
      // fetch and HTTP servers trim "Bearer " to "Bearer", so an empty credential arrives as the bare scheme.
      const token = header.slice(6).trim();
      if (token === "") return Promise.reject(new AuthError("invalid_token", "token is empty"));
      if (!B64TOKEN.test(token)) return Promise.reject(new AuthError("invalid_token", "token is malformed"));
      return verifier.verify(token);
    },
  };
}

/** RFC 6750 §2.1 `b64token`. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * Options for {@linkcode apiKeyAgent}.
 *
 * @example Keys in a custom header
 * ```ts
 * import { apiKeyAgent, type ApiKeyAgentOptions } from "./agents.ts";
 * const options: ApiKeyAgentOptions = { header: "x-partner-key", lookup: () => Promise.resolve(undefined) };
 * const agent = apiKeyAgent(options);
 * ```
 */
export interface ApiKeyAgentOptions {
  /** Header that carries the key. @default {"x-api-key"} */
  header?: string;
  /**
   * Finds the principal for a key, or `undefined` for an unknown one. It receives the SHA-256 (hex) of the key, so
   * stores keep only hashes and a lookup cannot leak keys through timing of string comparison.
   */
  lookup: (keyHash: string) => Promise<Principal | undefined>;
}

/**
 * Authenticates a static API key from a header (for machine clients that cannot do OAuth).
 *
 * @example
 * ```ts
 * import { apiKeyAgent } from "./agents.ts";
 * const keys = new Map([["<sha256 hex>", { sub: "partner-1", scopes: ["products:read"] }]]);
 * const agent = apiKeyAgent({ lookup: async (hash) => keys.get(hash) });
 * ```
 */
export function apiKeyAgent(options: ApiKeyAgentOptions): AuthAgent {
  const header = options.header ?? "x-api-key";
  return {
    scheme: "ApiKey",
    async authenticate(req) {
      const key = req.headers.get(header);
      if (key === null) return undefined;
      if (key.length < 16 || key.length > 256) throw new AuthError("invalid_token", "malformed API key");
      const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
      const hash = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
      const principal = await options.lookup(hash);
      if (!principal) throw new AuthError("invalid_token", "unknown API key");
      return principal;
    },
  };
}
