import type { KeySet } from "./jwks.ts";
import { importPublicJwk } from "./keys.ts";

/** Options for {@linkcode remoteJwks}. */
export interface RemoteJwksOptions {
  /** Abort a JWKS fetch (headers and body) after this long. @default {5000} */
  timeoutMs?: number;
  /**
   * Minimum time between fetches triggered by traffic (an unknown `kid`, a stale set, or retrying after a failed
   * first fetch), so a flood of tokens with bogus `kid`s costs the auth service one request per cooldown.
   * @default {30000}
   */
  cooldownMs?: number;
  /** After this long the set is refreshed in the background while the cached keys keep serving. @default {600000} */
  maxAgeMs?: number;
  /** Refuse JWKS responses larger than this. @default {1048576} */
  maxBytes?: number;
  /** The fetch to use, injectable for tests. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Clock in epoch milliseconds, injectable for tests. @default {Date.now} */
  now?: () => number;
}

/** A key set fetched from an auth service's JWKS endpoint. */
export interface RemoteJwks extends KeySet {
  /**
   * Whether keys have ever been fetched. When they have not, it tries once (ignoring the cooldown, joining a fetch
   * already under way) so a readiness probe both reports and drives recovery. Never rejects.
   */
  ready(): Promise<boolean>;
  /** Fetches now (joining a fetch already under way), ignoring the cooldown. Rejects when the fetch fails. */
  refresh(): Promise<void>;
  /** When the keys were last fetched successfully, epoch milliseconds. */
  readonly fetchedAt: number | undefined;
  /** Why the last fetch failed, or `undefined` when it succeeded. */
  readonly lastError: unknown;
}

/**
 * A verifier's view of a remote JWKS. Keys are cached; an unknown `kid` triggers a refetch at most once per
 * cooldown (concurrent callers share one fetch); a failed refresh keeps the cached keys in use, so a brief auth
 * outage does not fail requests whose keys are already known. `get` rejects only while no fetch has ever
 * succeeded, so readiness can fail closed on `ready()`.
 *
 * Written on `fetch` + `importJWK` instead of jose's `createRemoteJWKSet`, which measures the cooldown from the
 * last successful fetch (so, while auth is down, every bogus `kid` refetches) and throws once its cache is older
 * than `cacheMaxAge` and the refetch fails (so an outage longer than that fails every request).
 *
 * @example Verify against the auth service, failing readiness closed
 * ```ts
 * import { remoteJwks } from "./remote_jwks.ts";
 * const keys = remoteJwks("http://127.0.0.1:1/.well-known/jwks.json", { timeoutMs: 200 });
 * const isReady = await keys.ready(); // false: nothing listens there
 * ```
 */
export function remoteJwks(url: string | URL, options: RemoteJwksOptions = {}): RemoteJwks {
  const href = new URL(url).href;
  const timeoutMs = nonNegative(options.timeoutMs ?? 5_000, "timeoutMs");
  const cooldownMs = nonNegative(options.cooldownMs ?? 30_000, "cooldownMs");
  const maxAgeMs = nonNegative(options.maxAgeMs ?? 600_000, "maxAgeMs");
  const maxBytes = nonNegative(options.maxBytes ?? 1_048_576, "maxBytes");
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const now = options.now ?? Date.now;

  let keys: Map<string, CryptoKey> | undefined;
  let fetchedAt: number | undefined;
  let attemptedAt = -Infinity;
  let inflight: Promise<void> | undefined;
  let lastError: unknown;

  const coolEnough = () => now() - attemptedAt >= cooldownMs;

  function load(): Promise<void> {
    if (inflight) return inflight;
    attemptedAt = now();
    inflight = fetchKeys().then(
      (next) => {
        keys = next;
        fetchedAt = now();
        lastError = undefined;
      },
      (err) => {
        lastError = err;
        throw err;
      },
    ).finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  async function fetchKeys(): Promise<Map<string, CryptoKey>> {
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException(`JWKS fetch timed out after ${timeoutMs} ms`, "TimeoutError")),
      timeoutMs,
    );
    try {
      const res = await fetchImpl(href, {
        headers: { accept: "application/json, application/jwk-set+json" },
        redirect: "manual",
        signal: controller.signal,
      });
      if (res.status !== 200) {
        await res.body?.cancel();
        throw new Error(`Cannot fetch JWKS from ${href}: HTTP ${res.status}`);
      }
      if (Number(res.headers.get("content-length")) > maxBytes) {
        await res.body?.cancel();
        throw new Error(`Cannot fetch JWKS from ${href}: larger than ${maxBytes} bytes`);
      }
      const text = await res.text();
      if (text.length > maxBytes) throw new Error(`Cannot fetch JWKS from ${href}: larger than ${maxBytes} bytes`);
      const body = JSON.parse(text);
      if (!Array.isArray(body?.keys)) throw new Error(`Cannot use JWKS from ${href}: no "keys" array`);
      const next = new Map<string, CryptoKey>();
      for (const jwk of body.keys) {
        // Keys we cannot use (other algorithms, encryption keys) are skipped rather than failing the set.
        const key = await importPublicJwk(jwk).catch(() => undefined);
        if (key) next.set(key.kid, key.publicKey);
      }
      if (next.size === 0) throw new Error(`Cannot use JWKS from ${href}: no ES256 signing keys`);
      return next;
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    async get(kid) {
      if (!keys) {
        if (!inflight && !coolEnough()) {
          throw new Error(`JWKS from ${href} has not been fetched yet`, { cause: lastError });
        }
        try {
          await load();
        } catch (err) {
          throw new Error(`JWKS from ${href} has not been fetched yet`, { cause: err });
        }
      }
      const key = keys!.get(kid);
      if (key) {
        if (now() - fetchedAt! >= maxAgeMs && !inflight && coolEnough()) load().catch(() => {});
        return key;
      }
      if (inflight || coolEnough()) await load().catch(() => {});
      return keys!.get(kid);
    },
    async ready() {
      if (keys) return true;
      await load().catch(() => {});
      return keys !== undefined;
    },
    refresh: load,
    get fetchedAt() {
      return fetchedAt;
    },
    get lastError() {
      return lastError;
    },
  };
}

function nonNegative(value: number, name: string): number {
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(`Cannot create remote JWKS with ${name} as ${value}: it must be a finite number >= 0`);
  }
  return value;
}
