import type { KeySet } from "./jwks.ts";
import { importPublicJwk } from "./keys.ts";

/**
 * Options for {@linkcode remoteJwks}.
 *
 * @example Refresh every minute, with an injected fetch
 * ```ts
 * import { remoteJwks, type RemoteJwksOptions } from "./remote_jwks.ts";
 * const options: RemoteJwksOptions = {
 *   maxAgeMs: 60_000,
 *   cooldownMs: 5_000,
 *   fetch: () => Promise.resolve(Response.json({ keys: [] })),
 * };
 * const keys = remoteJwks("https://auth.trellis.test/.well-known/jwks.json", options);
 * ```
 */
export interface RemoteJwksOptions {
  /** Abort a JWKS fetch (headers and body) after this long. @default {5000} */
  timeoutMs?: number;
  /**
   * Minimum time between fetches triggered by traffic (an unknown `kid`, a stale set, or retrying after a failed
   * first fetch), so a flood of tokens with bogus `kid`s costs the auth service one request per cooldown.
   * @default {30000}
   */
  cooldownMs?: number;
  /**
   * After this long the set is refreshed in the background (on the next lookup) while the cached keys keep serving.
   * A `Cache-Control: max-age` on the JWKS response shortens it, so the auth service decides how soon verifiers see
   * a withdrawn key; it never lengthens it.
   * @default {600000}
   */
  maxAgeMs?: number;
  /** Refuse JWKS responses larger than this. @default {1048576} */
  maxBytes?: number;
  /** The fetch to use, injectable for tests. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Clock in epoch milliseconds, injectable for tests. @default {Date.now} */
  now?: () => number;
}

/**
 * A key set fetched from an auth service's JWKS endpoint.
 *
 * @example Drop cached tokens when a key is withdrawn
 * ```ts
 * import { exportPublicJwk, generateSigningKey } from "./keys.ts";
 * import { type RemoteJwks, remoteJwks } from "./remote_jwks.ts";
 * const jwk = await exportPublicJwk(await generateSigningKey());
 * const keys: RemoteJwks = remoteJwks("https://auth.trellis.test/.well-known/jwks.json", {
 *   fetch: () => Promise.resolve(Response.json({ keys: [jwk] })),
 * });
 * const unsubscribe = keys.onKeysChanged((kids) => console.log("withdrawn", kids));
 * await keys.ready(); // true
 * (await keys.get(jwk.kid)) !== undefined; // true
 * unsubscribe();
 * ```
 */
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
  /**
   * Registers `listener` to run after a fetch withdrew keys (a `kid` gone from the set, or the same `kid` with other
   * key material), with those `kid`s; returns an unregister function. Listeners run synchronously once the new set
   * is in use; one that throws does not affect the others or the fetch.
   */
  onKeysChanged(listener: (removedKids: readonly string[]) => void): () => void;
}

/**
 * A verifier's view of a remote JWKS. Keys are cached; an unknown `kid` triggers a refetch at most once per
 * cooldown (concurrent callers share one fetch); a failed refresh keeps the cached keys in use, so a brief auth
 * outage does not fail requests whose keys are already known. `get` rejects only while no fetch has ever
 * succeeded, so readiness can fail closed on `ready()`.
 *
 * Verifiers built on it ({@linkcode createVerifier}) subscribe to {@linkcode RemoteJwks.onKeysChanged} and forget the
 * tokens they verified with a withdrawn key.
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
  /** `x.y` of each cached key, to tell a replaced key from the same one fetched again. */
  let material = new Map<string, string>();
  let fetchedAt: number | undefined;
  let staleAfterMs = maxAgeMs;
  const listeners = new Set<(removedKids: readonly string[]) => void>();
  let attemptedAt = -Infinity;
  let inflight: Promise<void> | undefined;
  let lastError: unknown;

  const coolEnough = () => now() - attemptedAt >= cooldownMs;

  function load(): Promise<void> {
    if (inflight) return inflight;
    attemptedAt = now();
    inflight = fetchKeys().then(
      (next) => {
        const removed = [...material].filter(([kid, xy]) => next.material.get(kid) !== xy).map(([kid]) => kid);
        keys = next.keys;
        material = next.material;
        staleAfterMs = next.maxAgeMs;
        fetchedAt = now();
        lastError = undefined;
        if (removed.length > 0) {
          for (const listener of listeners) {
            try {
              listener(removed);
            } catch { /* a listener's failure is its own; the new set is in use either way */ }
          }
        }
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

  async function fetchKeys(): Promise<
    { keys: Map<string, CryptoKey>; material: Map<string, string>; maxAgeMs: number }
  > {
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
      const nextMaterial = new Map<string, string>();
      for (const jwk of body.keys) {
        // Keys we cannot use (other algorithms, encryption keys) are skipped rather than failing the set.
        const key = await importPublicJwk(jwk).catch(() => undefined);
        if (key) {
          next.set(key.kid, key.publicKey);
          nextMaterial.set(key.kid, `${jwk.x}.${jwk.y}`);
        }
      }
      if (next.size === 0) throw new Error(`Cannot use JWKS from ${href}: no ES256 signing keys`);
      return { keys: next, material: nextMaterial, maxAgeMs: Math.min(maxAgeMs, cacheControlMaxAgeMs(res.headers)) };
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
        if (now() - fetchedAt! >= staleAfterMs && !inflight && coolEnough()) load().catch(() => {});
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
    onKeysChanged(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
  };
}

/** The response's `max-age` in ms (0 for `no-cache`/`no-store`), or `Infinity` when it sets none. */
function cacheControlMaxAgeMs(headers: Headers): number {
  const value = headers.get("cache-control");
  if (!value) return Infinity;
  if (/(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)/i.test(value)) return 0;
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?\s*(?:,|$)/i.exec(value);
  return match ? Number(match[1]) * 1000 : Infinity;
}

function nonNegative(value: number, name: string): number {
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new RangeError(`Cannot create remote JWKS with ${name} as ${value}: it must be a finite number >= 0`);
  }
  return value;
}
