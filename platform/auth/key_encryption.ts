import type { PrivateJwk } from "./keys.ts";

/**
 * A private JWK encrypted with AES-256-GCM: ciphertext (with its 16-byte tag) and 12-byte IV, both base64url.
 *
 * @example What a key row stores
 * ```ts
 * import { importKeyEncryptionKey, type SealedJwk, sealPrivateJwk } from "./key_encryption.ts";
 * import { exportPrivateJwk, generateSigningKey } from "./keys.ts";
 * const kek = await importKeyEncryptionKey(btoa("0123456789abcdef0123456789abcdef"));
 * const sealed: SealedJwk = await sealPrivateJwk(kek, await exportPrivateJwk(await generateSigningKey()));
 * const row = { ciphertext: sealed.ciphertext, iv: sealed.iv };
 * ```
 */
export interface SealedJwk {
  ciphertext: string;
  iv: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Imports a key-encryption key from base64 (standard or URL-safe) of exactly 32 bytes, as an AES-256-GCM key that
 * cannot be exported. `name` is the setting it came from, used in errors; the value itself never is.
 *
 * @example
 * ```ts
 * import { importKeyEncryptionKey } from "./key_encryption.ts";
 * const raw = crypto.getRandomValues(new Uint8Array(32));
 * const kek = await importKeyEncryptionKey(btoa(String.fromCharCode(...raw)), "AUTH_KEY_ENCRYPTION_KEY");
 * ```
 */
export async function importKeyEncryptionKey(base64: string, name = "the key-encryption key"): Promise<CryptoKey> {
  const raw = decodeBase64(base64);
  if (raw?.length !== 32) {
    throw new RangeError(
      `Cannot use ${name} as an AES-256 key: ${raw ? `it decodes to ${raw.length} bytes` : "it is not base64"}, ` +
        "expected base64 of 32 bytes",
    );
  }
  return await crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

/**
 * Encrypts a private JWK under `kek` with a fresh random IV. The `kid` is bound as additional authenticated data,
 * so a ciphertext copied onto another key's row does not decrypt.
 *
 * @example Seal a key before storing it
 * ```ts
 * import { importKeyEncryptionKey, sealPrivateJwk } from "./key_encryption.ts";
 * import { exportPrivateJwk, generateSigningKey } from "./keys.ts";
 * const kek = await importKeyEncryptionKey(btoa("0123456789abcdef0123456789abcdef"));
 * const sealed = await sealPrivateJwk(kek, await exportPrivateJwk(await generateSigningKey()));
 * ```
 */
export async function sealPrivateJwk(kek: CryptoKey, jwk: PrivateJwk): Promise<SealedJwk> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: aad(jwk.kid) },
    kek,
    encoder.encode(JSON.stringify(jwk)),
  );
  return { ciphertext: encodeBase64Url(new Uint8Array(ciphertext)), iv: encodeBase64Url(iv) };
}

/**
 * Decrypts what {@linkcode sealPrivateJwk} sealed for `kid`. A wrong key-encryption key, a tampered ciphertext or a
 * ciphertext from another key's row all fail the GCM tag check and throw an `Error` saying so.
 *
 * @example Round trip
 * ```ts
 * import { importKeyEncryptionKey, openPrivateJwk, sealPrivateJwk } from "./key_encryption.ts";
 * import { exportPrivateJwk, generateSigningKey } from "./keys.ts";
 * const kek = await importKeyEncryptionKey(btoa("0123456789abcdef0123456789abcdef"));
 * const jwk = await exportPrivateJwk(await generateSigningKey());
 * const opened = await openPrivateJwk(kek, jwk.kid, await sealPrivateJwk(kek, jwk));
 * opened.d === jwk.d; // true
 * ```
 */
export async function openPrivateJwk(kek: CryptoKey, kid: string, sealed: SealedJwk): Promise<PrivateJwk> {
  const iv = decodeBase64(sealed.iv);
  const ciphertext = decodeBase64(sealed.ciphertext);
  if (iv?.length !== 12 || !ciphertext) {
    throw new TypeError(`Cannot decrypt signing key ${kid}: the stored IV or ciphertext is not base64url`);
  }
  let plaintext: ArrayBuffer;
  try {
    plaintext = await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad(kid) }, kek, ciphertext);
  } catch (cause) {
    throw new Error(
      `Cannot decrypt signing key ${kid}: the key-encryption key is not the one it was encrypted with, ` +
        "or the stored ciphertext was altered",
      { cause },
    );
  }
  const jwk = JSON.parse(decoder.decode(plaintext)) as PrivateJwk;
  if (jwk.kid !== kid) throw new Error(`Cannot decrypt signing key ${kid}: it holds key ${jwk.kid}`);
  return jwk;
}

function aad(kid: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(`trellis signing key ${kid}`);
}

function encodeBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decodeBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  const normal = text.trim().replaceAll("-", "+").replaceAll("_", "/");
  try {
    return Uint8Array.from(atob(normal.padEnd(Math.ceil(normal.length / 4) * 4, "=")), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}
