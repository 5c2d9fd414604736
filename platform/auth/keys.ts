import { calculateJwkThumbprint, exportJWK, importJWK, type JWK } from "jose";

/**
 * The only signing algorithm Trellis issues and accepts.
 *
 * @example Pin the algorithm when verifying elsewhere
 * ```ts
 * import { SIGNING_ALG } from "./keys.ts";
 * const header = { alg: SIGNING_ALG, typ: "JWT" }; // { alg: "ES256", typ: "JWT" }
 * ```
 */
export const SIGNING_ALG = "ES256";

/**
 * A public signing key as served in a JWKS: an EC P-256 JWK with `kid`, `alg: ES256` and `use: sig`.
 *
 * @example Serve a key's public half
 * ```ts
 * import { exportPublicJwk, generateSigningKey, type PublicJwk } from "./keys.ts";
 * const jwk: PublicJwk = await exportPublicJwk(await generateSigningKey());
 * jwk.use; // "sig"
 * ```
 */
export interface PublicJwk {
  kty: "EC";
  crv: "P-256";
  x: string;
  y: string;
  kid: string;
  alg: typeof SIGNING_ALG;
  use: "sig";
}

/**
 * A private signing key as persisted (the public members plus `d`). Treat it as a secret.
 *
 * @example Persist a key
 * ```ts
 * import { exportPrivateJwk, generateSigningKey, type PrivateJwk } from "./keys.ts";
 * const stored: PrivateJwk = await exportPrivateJwk(await generateSigningKey());
 * typeof stored.d; // "string"
 * ```
 */
export interface PrivateJwk extends PublicJwk {
  d: string;
}

/**
 * A key pair ready for signing and verifying, named by its RFC 7638 thumbprint.
 *
 * @example Sign with a fresh key
 * ```ts
 * import { generateSigningKey, type SigningKey } from "./keys.ts";
 * const key: SigningKey = await generateSigningKey();
 * key.kid.length; // 43: a base64url SHA-256 thumbprint
 * ```
 */
export interface SigningKey {
  /** RFC 7638 SHA-256 thumbprint of the public key, base64url. */
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

/**
 * A public key ready for verifying.
 *
 * @example Verify with the public half only
 * ```ts
 * import { generateSigningKey, type VerificationKey } from "./keys.ts";
 * const { kid, publicKey } = await generateSigningKey();
 * const key: VerificationKey = { kid, publicKey };
 * ```
 */
export interface VerificationKey {
  kid: string;
  publicKey: CryptoKey;
}

/**
 * Generates a fresh ES256 key pair. The private key is extractable so it can be exported and persisted.
 *
 * @example
 * ```ts
 * import { generateSigningKey } from "./keys.ts";
 * const key = await generateSigningKey();
 * key.kid.length; // 43
 * ```
 */
export async function generateSigningKey(): Promise<SigningKey> {
  // WebCrypto directly rather than jose's generateKeyPair: jose's declaration types the keys with Node's CryptoKey,
  // which does not type-check against the web CryptoKey once Node types are in the program (grpc-js brings them).
  const { privateKey, publicKey } = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ]);
  return { kid: await thumbprint(publicKey), privateKey, publicKey };
}

/**
 * Exports the private key as a JWK (with `kid`, `alg`, `use`) so a service can store it as JSON.
 *
 * @example Persist a key
 * ```ts
 * import { exportPrivateJwk, generateSigningKey } from "./keys.ts";
 * const json = JSON.stringify(await exportPrivateJwk(await generateSigningKey()));
 * ```
 */
export async function exportPrivateJwk(key: SigningKey): Promise<PrivateJwk> {
  const jwk = await exportJWK(key.privateKey);
  if (typeof jwk.d !== "string") {
    throw new TypeError(`Cannot export key ${key.kid} as a private JWK: the private key is not extractable`);
  }
  return { ...toPublicJwk(jwk, key.kid), d: jwk.d };
}

/**
 * Exports the public key as a JWK for a JWKS.
 *
 * @example
 * ```ts
 * import { exportPublicJwk, generateSigningKey } from "./keys.ts";
 * const jwk = await exportPublicJwk(await generateSigningKey());
 * jwk.alg; // "ES256"
 * ```
 */
export async function exportPublicJwk(key: SigningKey | VerificationKey): Promise<PublicJwk> {
  return toPublicJwk(await exportJWK(key.publicKey), key.kid);
}

/**
 * Options for {@linkcode importPrivateJwk}.
 *
 * @example Import a key that can be exported again
 * ```ts
 * import { exportPrivateJwk, generateSigningKey, importPrivateJwk, type ImportPrivateJwkOptions } from "./keys.ts";
 * const options: ImportPrivateJwkOptions = { extractable: true };
 * const key = await importPrivateJwk(await exportPrivateJwk(await generateSigningKey()), options);
 * ```
 */
export interface ImportPrivateJwkOptions {
  /** Whether the imported private key can be exported again. @default {false} */
  extractable?: boolean;
}

/**
 * Imports a persisted private JWK. The `kid` is recomputed from the key material and must match the stored one,
 * so a tampered or mislabelled row fails loudly instead of signing under the wrong `kid`.
 *
 * @example Load a key from the database
 * ```ts
 * import { exportPrivateJwk, generateSigningKey, importPrivateJwk } from "./keys.ts";
 * const stored = await exportPrivateJwk(await generateSigningKey());
 * const key = await importPrivateJwk(stored);
 * key.kid === stored.kid; // true
 * ```
 */
export async function importPrivateJwk(jwk: PrivateJwk, options: ImportPrivateJwkOptions = {}): Promise<SigningKey> {
  assertEcP256(jwk, "private");
  if (typeof jwk.d !== "string") throw new TypeError("Cannot import JWK as a private key: it has no 'd'");
  const publicKey = await importJWK(
    { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, ext: true },
    SIGNING_ALG,
  ) as CryptoKey;
  const kid = await thumbprint(publicKey);
  if (jwk.kid !== undefined && jwk.kid !== kid) {
    throw new TypeError(`Cannot import JWK as a private key: kid ${jwk.kid} does not match its thumbprint ${kid}`);
  }
  const privateKey = await importJWK(
    { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y, d: jwk.d, ext: options.extractable ?? false },
    SIGNING_ALG,
    { extractable: options.extractable ?? false },
  ) as CryptoKey;
  return { kid, privateKey, publicKey };
}

/**
 * Imports a public JWK for verification. Anything but an EC P-256 key meant for ES256 signatures is refused, and
 * a missing `kid` is filled in from the thumbprint.
 *
 * @example
 * ```ts
 * import { exportPublicJwk, generateSigningKey, importPublicJwk } from "./keys.ts";
 * const { kid, publicKey } = await importPublicJwk(await exportPublicJwk(await generateSigningKey()));
 * ```
 */
export async function importPublicJwk(jwk: JWK): Promise<VerificationKey> {
  assertEcP256(jwk, "public");
  if (jwk.alg !== undefined && jwk.alg !== SIGNING_ALG) {
    throw new TypeError(`Cannot import JWK as a public key: current alg is ${jwk.alg}, expected ${SIGNING_ALG}`);
  }
  if (jwk.use !== undefined && jwk.use !== "sig") {
    throw new TypeError(`Cannot import JWK as a public key: current use is ${jwk.use}, expected sig`);
  }
  const publicKey = await importJWK({ kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y }, SIGNING_ALG) as CryptoKey;
  return { kid: typeof jwk.kid === "string" && jwk.kid !== "" ? jwk.kid : await thumbprint(publicKey), publicKey };
}

async function thumbprint(publicKey: CryptoKey): Promise<string> {
  return await calculateJwkThumbprint(await exportJWK(publicKey), "sha256");
}

function toPublicJwk(jwk: JWK, kid: string): PublicJwk {
  assertEcP256(jwk, "public");
  return { kty: "EC", crv: "P-256", x: jwk.x as string, y: jwk.y as string, kid, alg: SIGNING_ALG, use: "sig" };
}

function assertEcP256(jwk: JWK, what: string): void {
  if (jwk === null || typeof jwk !== "object") throw new TypeError(`Cannot import ${what} JWK: it is not an object`);
  if (jwk.kty !== "EC" || jwk.crv !== "P-256" || typeof jwk.x !== "string" || typeof jwk.y !== "string") {
    throw new TypeError(
      `Cannot use JWK as an ES256 ${what} key: current kty/crv is ${jwk.kty}/${jwk.crv}, expected EC/P-256 with x and y`,
    );
  }
}
