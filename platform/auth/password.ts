/**
 * Options for {@linkcode hashPassword}.
 *
 * @example Fewer iterations, for tests only
 * ```ts
 * import { hashPassword, type HashPasswordOptions } from "./password.ts";
 * const fast: HashPasswordOptions = { iterations: 1_000 };
 * const encoded = await hashPassword("hunter2", fast);
 * encoded.startsWith("pbkdf2-sha256$1000$"); // true
 * ```
 */
export interface HashPasswordOptions {
  /** PBKDF2 iterations; OWASP's 2023 figure for PBKDF2-HMAC-SHA256. @default {600000} */
  iterations?: number;
}

const SCHEME = "pbkdf2-sha256";
const DEFAULT_ITERATIONS = 600_000;
const SALT_BYTES = 16;
const HASH_BITS = 256;
/** Upper bound on iterations read from a stored hash, so a corrupted row cannot pin a CPU for minutes. */
const MAX_ITERATIONS = 10_000_000;

/**
 * Hashes a password with PBKDF2-HMAC-SHA256 (WebCrypto) into a self-describing string
 * `pbkdf2-sha256$<iterations>$<saltB64>$<hashB64>`, with a fresh 16-byte salt.
 *
 * PBKDF2 rather than argon2id: a WASM argon2id (hash-wasm) works in Deno but runs on the event loop, blocking every
 * other request for each ~85 ms hash, while WebCrypto's PBKDF2 runs off the event loop. The scheme prefix leaves
 * room to add argon2id (for instance in a worker) and rehash on login with {@linkcode needsRehash}.
 *
 * @example
 * ```ts
 * import { hashPassword, verifyPassword } from "./password.ts";
 * const encoded = await hashPassword("correct horse battery staple", { iterations: 1000 });
 * await verifyPassword("correct horse battery staple", encoded); // true
 * ```
 */
export async function hashPassword(password: string, options: HashPasswordOptions = {}): Promise<string> {
  const iterations = options.iterations ?? DEFAULT_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    throw new RangeError(`Cannot hash password with iterations as ${iterations}: it must be 1..${MAX_ITERATIONS}`);
  }
  if (typeof password !== "string") throw new TypeError("Cannot hash password: it must be a string");
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(password, salt, iterations, HASH_BITS);
  return `${SCHEME}$${iterations}$${toBase64(salt)}$${toBase64(hash)}`;
}

/**
 * Checks a password against an encoded hash in constant time (for a given hash length). Resolves `false` for a
 * wrong password and for an encoded string it cannot parse, so callers have one failure path.
 *
 * @example
 * ```ts
 * import { hashPassword, verifyPassword } from "./password.ts";
 * const encoded = await hashPassword("s3cret", { iterations: 1000 });
 * await verifyPassword("guess", encoded); // false
 * ```
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parsed = parse(encoded);
  if (!parsed || typeof password !== "string") return false;
  const actual = await derive(password, parsed.salt, parsed.iterations, parsed.hash.length * 8);
  return timingSafeEqual(actual, parsed.hash);
}

/**
 * Whether an encoded hash was made with weaker settings than `options` (or another scheme), so a login that just
 * verified the password should store a fresh hash.
 *
 * @example Upgrade on login
 * ```ts
 * import { hashPassword, needsRehash } from "./password.ts";
 * const old = await hashPassword("pw", { iterations: 1000 });
 * needsRehash(old); // true: fewer than 600000 iterations
 * ```
 */
export function needsRehash(encoded: string, options: HashPasswordOptions = {}): boolean {
  const parsed = parse(encoded);
  return !parsed || parsed.iterations < (options.iterations ?? DEFAULT_ITERATIONS);
}

function parse(encoded: string): { iterations: number; salt: Uint8Array; hash: Uint8Array } | undefined {
  if (typeof encoded !== "string") return undefined;
  const parts = encoded.split("$");
  if (parts.length !== 4 || parts[0] !== SCHEME || !/^[1-9][0-9]{0,7}$/.test(parts[1])) return undefined;
  const iterations = Number(parts[1]);
  if (iterations > MAX_ITERATIONS) return undefined;
  try {
    const salt = fromBase64(parts[2]);
    const hash = fromBase64(parts[3]);
    if (salt.length < 8 || hash.length < 16 || hash.length > 64) return undefined;
    return { iterations, salt, hash };
  } catch {
    return undefined;
  }
}

async function derive(password: string, salt: Uint8Array, iterations: number, bits: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(password), "PBKDF2", false, [
    "deriveBits",
  ]);
  const salted = new Uint8Array(salt);
  return new Uint8Array(
    await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: salted, iterations }, key, bits),
  );
}

function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const byte of bytes) s += String.fromCharCode(byte);
  return btoa(s).replace(/=+$/, "");
}

function fromBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]+$/.test(text)) throw new TypeError("not base64");
  const padded = text + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}
