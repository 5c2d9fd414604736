import { errors, type JWTPayload, jwtVerify } from "jose";
import type { Principal } from "../context/mod.ts";
import { AuthError } from "./auth_error.ts";
import type { KeySet } from "./jwks.ts";
import { SIGNING_ALG } from "./keys.ts";

/**
 * Options for {@linkcode createVerifier}.
 *
 * @example Verify tokens for the orders service, with no cache
 * ```ts
 * import { staticKeySet } from "./jwks.ts";
 * import { createVerifier, type VerifierOptions } from "./verifier.ts";
 * const options: VerifierOptions = {
 *   issuer: "https://auth.trellis.test",
 *   audience: "orders",
 *   keys: staticKeySet([]),
 *   cacheMaxEntries: 0,
 * };
 * const verifier = createVerifier(options);
 * ```
 */
export interface VerifierOptions {
  /** The `iss` a token must carry. */
  issuer: string;
  /** The `aud` (one of) a token must carry: this service's name. */
  audience: string | readonly string[];
  /** Where public keys come from: {@linkcode remoteJwks} in services, {@linkcode staticKeySet} in auth and tests. */
  keys: KeySet;
  /** Accepted clock skew for `exp`, `nbf` and `iat`, in seconds. @default {30} */
  clockToleranceSec?: number;
  /** Tokens longer than this are refused before any parsing. @default {8192} */
  maxTokenBytes?: number;
  /** How many verified tokens to remember; 0 turns the cache off. @default {10000} */
  cacheMaxEntries?: number;
  /** Clock in epoch milliseconds, injectable for tests. @default {Date.now} */
  now?: () => number;
}

/**
 * Verifies bearer tokens.
 *
 * @example Reject a token signed by an unknown key
 * ```ts
 * import { AuthError } from "./auth_error.ts";
 * import { createIssuer } from "./issuer.ts";
 * import { staticKeySet } from "./jwks.ts";
 * import { generateSigningKey } from "./keys.ts";
 * import { createVerifier, type Verifier } from "./verifier.ts";
 * const issuer = createIssuer({ issuer: "https://auth", key: await generateSigningKey() });
 * const verifier: Verifier = createVerifier({ issuer: "https://auth", audience: "orders", keys: staticKeySet([]) });
 * const token = await issuer.issue({ sub: "u-1", aud: "orders", scopes: [], ttlSeconds: 60 });
 * const error = await verifier.verify(token).catch((e) => e);
 * if (!(error instanceof AuthError) || error.error !== "invalid_token") throw new Error("expected invalid_token");
 * ```
 */
export interface Verifier {
  /** Resolves to the token's principal, or rejects with {@linkcode AuthError}. */
  verify(token: string): Promise<Principal>;
  /** Forgets every verified token, so the next use of each checks the signature again. */
  clear(): void;
  /**
   * Forgets the verified tokens signed with any of `kids`; returns how many it dropped. Called by itself when the
   * key set reports withdrawn keys ({@linkcode KeySet.onKeysChanged}); call it yourself for a key set that cannot.
   */
  forgetKeys(kids: Iterable<string>): number;
  /** How many verified tokens are cached. */
  readonly cacheSize: number;
}

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

interface CacheEntry {
  principal: Principal;
  expiresAt: number;
  kid: string;
}

/**
 * Creates a verifier for ES256 access tokens. The algorithm is pinned (never read from the token), `exp` and `sub`
 * are required, and every failure is an {@linkcode AuthError}. Verified tokens are cached (keyed by the token
 * itself, bounded, least recently used evicted first, each entry dropped at its token's `exp`), so a client
 * reusing a token pays for the signature check once. When the key set reports withdrawn keys
 * ({@linkcode KeySet.onKeysChanged}, as {@linkcode remoteJwks} does), the tokens signed with them are forgotten, so
 * a retired key stops authenticating even tokens seen before.
 *
 * @example Verify a token
 * ```ts
 * import { createIssuer } from "./issuer.ts";
 * import { staticKeySet } from "./jwks.ts";
 * import { generateSigningKey } from "./keys.ts";
 * import { createVerifier } from "./verifier.ts";
 * const key = await generateSigningKey();
 * const issuer = createIssuer({ issuer: "https://auth", key });
 * const verifier = createVerifier({ issuer: "https://auth", audience: "orders", keys: staticKeySet([key]) });
 * const token = await issuer.issue({ sub: "u-1", aud: "orders", scopes: ["orders:read"], ttlSeconds: 60 });
 * const principal = await verifier.verify(token);
 * principal.scopes; // ["orders:read"]
 * ```
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const { issuer, keys } = options;
  const audience = typeof options.audience === "string" ? options.audience : [...options.audience];
  const clockToleranceSec = options.clockToleranceSec ?? 30;
  const maxTokenBytes = options.maxTokenBytes ?? 8192;
  const cacheMaxEntries = options.cacheMaxEntries ?? 10_000;
  const now = options.now ?? Date.now;
  if (!issuer) throw new TypeError("Cannot create verifier without an issuer");
  if (audience.length === 0) throw new TypeError("Cannot create verifier without an audience");
  if (!keys || typeof keys.get !== "function") throw new TypeError("Cannot create verifier without a key set");
  const cache = new Map<string, CacheEntry>();
  // Bumped on every withdrawal, so a verification that was under way with a now-withdrawn key is not cached.
  let generation = 0;

  function forgetKeys(kids: Iterable<string>): number {
    const gone = new Set(kids);
    if (gone.size === 0) return 0;
    generation++;
    let dropped = 0;
    for (const [id, entry] of cache) {
      if (gone.has(entry.kid)) {
        cache.delete(id);
        dropped++;
      }
    }
    return dropped;
  }
  keys.onKeysChanged?.(forgetKeys);

  async function getKey(header: { alg?: string; kid?: string }): Promise<CryptoKey> {
    // jose also enforces `algorithms`, but checking here keeps a key lookup from ever happening for other algs.
    if (header.alg !== SIGNING_ALG) throw new AuthError("invalid_token", "algorithm not allowed");
    if (typeof header.kid !== "string" || header.kid === "") throw new AuthError("invalid_token", "token has no kid");
    let key: CryptoKey | undefined;
    try {
      key = await keys.get(header.kid);
    } catch (cause) {
      throw new AuthError("temporarily_unavailable", "signing keys are unavailable", { cause });
    }
    if (!key) throw new AuthError("invalid_token", "unknown signing key");
    return key;
  }

  async function verifySignature(token: string): Promise<{ principal: Principal; exp: number; kid: string }> {
    let payload: JWTPayload;
    let kid: string;
    try {
      let protectedHeader;
      ({ payload, protectedHeader } = await jwtVerify(token, getKey, {
        algorithms: [SIGNING_ALG],
        issuer,
        audience,
        clockTolerance: clockToleranceSec,
        requiredClaims: ["exp", "sub"],
        currentDate: new Date(now()),
      }));
      kid = protectedHeader.kid!;
    } catch (err) {
      throw toAuthError(err);
    }
    if (typeof payload.sub !== "string" || payload.sub === "") {
      throw new AuthError("invalid_token", "sub claim must be a non-empty string");
    }
    if (typeof payload.iat === "number" && payload.iat > now() / 1000 + clockToleranceSec) {
      throw new AuthError("invalid_token", "token is issued in the future");
    }
    if (payload.scope !== undefined && typeof payload.scope !== "string") {
      throw new AuthError("invalid_token", "scope claim must be a string");
    }
    const scopes = Object.freeze(payload.scope ? payload.scope.split(" ").filter(Boolean) : []);
    const principal: Principal = Object.freeze({ sub: payload.sub, scopes, token, claims: Object.freeze(payload) });
    return { principal, exp: payload.exp! * 1000, kid };
  }

  return {
    async verify(token) {
      if (typeof token !== "string" || token === "") throw new AuthError("invalid_token", "token is empty");
      if (token.length > maxTokenBytes) throw new AuthError("invalid_token", "token is too large");
      // Keyed by the token itself (an exact match, so no collision can let a forged token in): the cached principal
      // holds the token anyway, and hashing it was most of the cost of a hit (2-3 µs of 4-6 µs measured here). A
      // hit skips the syntax check too: only tokens that passed it are ever cached.
      const id = token;
      const hit = cacheMaxEntries === 0 ? undefined : cache.get(id);
      if (hit) {
        cache.delete(id);
        if (now() < hit.expiresAt) {
          cache.set(id, hit);
          return hit.principal;
        }
      }
      if (!COMPACT_JWS.test(token)) throw new AuthError("invalid_token", "token is malformed");
      if (cacheMaxEntries === 0) return (await verifySignature(token)).principal;
      const started = generation;
      const { principal, exp, kid } = await verifySignature(token);
      if (now() < exp && generation === started) {
        cache.set(id, { principal, expiresAt: exp, kid });
        if (cache.size > cacheMaxEntries) cache.delete(cache.keys().next().value!);
      }
      return principal;
    },
    clear() {
      cache.clear();
    },
    forgetKeys,
    get cacheSize() {
      return cache.size;
    },
  };
}

function toAuthError(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  if (err instanceof errors.JWTExpired) return new AuthError("invalid_token", "token expired", { cause: err });
  if (err instanceof errors.JWTClaimValidationFailed) {
    const description = err.claim === "nbf"
      ? "token is not yet valid"
      : err.reason === "missing"
      ? `missing ${err.claim} claim`
      : err.reason === "check_failed"
      ? `unexpected ${err.claim} claim value`
      : `${err.claim} claim is invalid`;
    return new AuthError("invalid_token", description, { cause: err });
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new AuthError("invalid_token", "signature verification failed", { cause: err });
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new AuthError("invalid_token", "algorithm not allowed", { cause: err });
  }
  return new AuthError("invalid_token", "token is malformed", { cause: err });
}
