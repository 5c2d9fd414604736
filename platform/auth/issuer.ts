import { SignJWT } from "jose";
import { SIGNING_ALG } from "./keys.ts";

/**
 * Options for {@linkcode createIssuer}.
 *
 * @example An issuer with a fixed clock
 * ```ts
 * import { createIssuer, type IssuerOptions } from "./issuer.ts";
 * import { generateSigningKey } from "./keys.ts";
 * const key = await generateSigningKey();
 * const options: IssuerOptions = { issuer: "https://auth.trellis.test", key, now: () => Date.UTC(2026, 0, 1) };
 * const issuer = createIssuer(options);
 * ```
 */
export interface IssuerOptions {
  /** The `iss` claim, usually the auth service's base URL. */
  issuer: string;
  /** The key to sign with; its `kid` goes into every token header. */
  key: { kid: string; privateKey: CryptoKey };
  /** Clock in epoch milliseconds, injectable for tests. @default {Date.now} */
  now?: () => number;
}

/**
 * What one token says.
 *
 * @example A service token for the orders service
 * ```ts
 * import type { IssueRequest } from "./issuer.ts";
 * const request: IssueRequest = { sub: "gateway", aud: "orders", scopes: ["orders:write"], ttlSeconds: 300 };
 * ```
 */
export interface IssueRequest {
  /** Subject: a user id or a service client id. */
  sub: string;
  /** Audience: the service (or services) that must accept the token. */
  aud: string | readonly string[];
  /** Granted scopes, written as the space-separated `scope` claim. */
  scopes: readonly string[];
  /** Lifetime in seconds. */
  ttlSeconds: number;
  /** Extra claims; registered claim names are refused. */
  extra?: Record<string, unknown>;
}

/**
 * Signs access tokens.
 *
 * @example Issue a token
 * ```ts
 * import { createIssuer, type Issuer } from "./issuer.ts";
 * import { generateSigningKey } from "./keys.ts";
 * const issuer: Issuer = createIssuer({ issuer: "https://auth", key: await generateSigningKey() });
 * const token = await issuer.issue({ sub: "u-1", aud: "orders", scopes: [], ttlSeconds: 60 });
 * token.split(".").length; // 3
 * ```
 */
export interface Issuer {
  /** Signs a compact JWT (`alg: ES256`, `typ: JWT`, `kid`) with iss/sub/aud/scope/iat/nbf/exp/jti. */
  issue(request: IssueRequest): Promise<string>;
}

const RESERVED = new Set(["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope"]);
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/**
 * Creates an issuer that signs ES256 access tokens with one key. Rotation means creating a new issuer with the new
 * key; verifiers keep accepting the previous key for as long as the JWKS lists it.
 *
 * @example Issue a token
 * ```ts
 * import { createIssuer } from "./issuer.ts";
 * import { generateSigningKey } from "./keys.ts";
 * const issuer = createIssuer({ issuer: "https://auth.trellis.test", key: await generateSigningKey() });
 * const token = await issuer.issue({ sub: "u-1", aud: "orders", scopes: ["orders:read"], ttlSeconds: 300 });
 * ```
 */
export function createIssuer(options: IssuerOptions): Issuer {
  const { issuer, key } = options;
  const now = options.now ?? Date.now;
  if (typeof issuer !== "string" || issuer === "") {
    throw new TypeError(`Cannot create issuer with issuer as ${JSON.stringify(issuer)}: it must be a non-empty string`);
  }
  if (!key?.kid || !key.privateKey) throw new TypeError("Cannot create issuer without key.kid and key.privateKey");
  return {
    async issue(request) {
      const { sub, aud, scopes, ttlSeconds, extra = {} } = request;
      if (typeof sub !== "string" || sub === "") throw new TypeError("Cannot issue a token without a sub");
      if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
        throw new RangeError(`Cannot issue a token with ttlSeconds as ${ttlSeconds}: it must be a positive integer`);
      }
      for (const scope of scopes) {
        if (!SCOPE_TOKEN.test(scope)) {
          throw new TypeError(`Cannot issue a token with scope ${JSON.stringify(scope)}: scopes are RFC 6749 tokens`);
        }
      }
      for (const name of Object.keys(extra)) {
        if (RESERVED.has(name)) throw new TypeError(`Cannot issue a token with extra claim ${name}: it is reserved`);
      }
      const iat = Math.floor(now() / 1000);
      return await new SignJWT({ ...extra, scope: scopes.join(" ") })
        .setProtectedHeader({ alg: SIGNING_ALG, kid: key.kid, typ: "JWT" })
        .setIssuer(issuer)
        .setSubject(sub)
        .setAudience(typeof aud === "string" ? aud : [...aud])
        .setIssuedAt(iat)
        .setNotBefore(iat)
        .setExpirationTime(iat + ttlSeconds)
        .setJti(crypto.randomUUID())
        .sign(key.privateKey);
    },
  };
}
