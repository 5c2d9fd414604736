import { type Handler, problemResponse } from "../http/mod.ts";
import type { PublicJwk, VerificationKey } from "./keys.ts";

/**
 * Where a verifier finds public keys by `kid`.
 *
 * Contract: `get` resolves to the key, or to `undefined` when the set is known and has no such `kid`; it rejects
 * only when keys cannot be obtained at all (a remote set that was never fetched), which verifiers report as
 * `temporarily_unavailable` rather than blaming the token.
 *
 * @example A key set of your own
 * ```ts
 * import type { KeySet } from "./jwks.ts";
 * import { generateSigningKey } from "./keys.ts";
 * const { kid, publicKey } = await generateSigningKey();
 * const keys: KeySet = { get: (k) => Promise.resolve(k === kid ? publicKey : undefined) };
 * (await keys.get("unknown")) === undefined; // true
 * ```
 */
export interface KeySet {
  get(kid: string): Promise<CryptoKey | undefined>;
  /**
   * Registers `listener` to be told which `kid`s the set withdrew (or whose key material it replaced), after the
   * change took effect; returns a function that unregisters it. Verifiers use it to forget tokens they verified with
   * those keys. Optional: a set that never withdraws keys need not implement it.
   */
  onKeysChanged?(listener: (removedKids: readonly string[]) => void): () => void;
}

/**
 * A key set held in memory, for the auth service itself (it verifies with the keys it signs with) and for tests.
 * `keys` may be a function so the set follows rotation without rebuilding verifiers.
 *
 * @example
 * ```ts
 * import { staticKeySet } from "./jwks.ts";
 * import { generateSigningKey } from "./keys.ts";
 * const key = await generateSigningKey();
 * const keys = staticKeySet([key]);
 * (await keys.get(key.kid)) === key.publicKey; // true
 * ```
 */
export function staticKeySet(keys: Iterable<VerificationKey> | (() => Iterable<VerificationKey>)): KeySet {
  const list = typeof keys === "function" ? keys : () => keys;
  return {
    get(kid) {
      for (const key of list()) if (key.kid === kid) return Promise.resolve(key.publicKey);
      return Promise.resolve(undefined);
    },
  };
}

/**
 * Options for {@linkcode jwksHandler}.
 *
 * @example Let caches keep the key set for a minute
 * ```ts
 * import { jwksHandler, type JwksHandlerOptions } from "./jwks.ts";
 * const options: JwksHandlerOptions = { maxAgeSec: 60 };
 * const handler = jwksHandler(() => [], options);
 * ```
 */
export interface JwksHandlerOptions {
  /** How long clients and caches may keep the response, in seconds. @default {300} */
  maxAgeSec?: number;
}

const PUBLIC_MEMBERS = ["kty", "crv", "x", "y", "kid", "alg", "use"] as const;

/**
 * Serves a JSON Web Key Set (`{ keys: [...] }`) built from `getKeys()` on every request, so the current and the
 * previous key appear as soon as rotation changes them. Only public members are copied out, so a private JWK passed
 * by mistake does not leak its `d`.
 *
 * @example Mount at /.well-known/jwks.json
 * ```ts
 * import { jwksHandler } from "./jwks.ts";
 * import { exportPublicJwk, generateSigningKey } from "./keys.ts";
 * const current = await exportPublicJwk(await generateSigningKey());
 * const handler = jwksHandler(() => [current]);
 * const res = await handler(new Request("http://auth/.well-known/jwks.json"));
 * ```
 */
export function jwksHandler(
  getKeys: () => readonly PublicJwk[] | Promise<readonly PublicJwk[]>,
  options: JwksHandlerOptions = {},
): Handler {
  const maxAgeSec = options.maxAgeSec ?? 300;
  return async function jwks(req) {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return problemResponse(405, "method-not-allowed", "Method not allowed", {
        detail: `${req.method} is not allowed on the JWKS`,
        headers: { allow: "GET, HEAD" },
      });
    }
    const keys = (await getKeys()).map((jwk) => {
      const out: Record<string, unknown> = {};
      for (const name of PUBLIC_MEMBERS) if (jwk[name] !== undefined) out[name] = jwk[name];
      return out;
    });
    return new Response(req.method === "HEAD" ? null : JSON.stringify({ keys }), {
      headers: { "content-type": "application/json", "cache-control": `public, max-age=${maxAgeSec}` },
    });
  };
}
