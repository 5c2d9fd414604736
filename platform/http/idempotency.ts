import { currentContext } from "../context/mod.ts";
import { readUpTo } from "./_bytes.ts";
import type { Middleware } from "./handler.ts";
import { problemResponse } from "./problem.ts";

/**
 * A response kept for replay: status, the headers chosen by {@linkcode IdempotencyOptions.replayHeaders}, and the
 * body bytes.
 *
 * @example A stored 201
 * ```ts
 * import type { StoredResponse } from "./idempotency.ts";
 * const stored: StoredResponse = {
 *   status: 201,
 *   headers: [["content-type", "application/json"], ["location", "/things/1"]],
 *   body: new TextEncoder().encode('{"id":"1"}'),
 * };
 * ```
 */
export interface StoredResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array<ArrayBuffer>;
}

/**
 * What a store holds for a key another request claimed first: its request fingerprint and, once that request has
 * finished, its response (`undefined` while it is still in flight).
 *
 * @example A key whose first request is still running
 * ```ts
 * import type { IdempotencyRecord } from "./idempotency.ts";
 * const record: IdempotencyRecord = { fingerprint: "ab12", response: undefined };
 * const inFlight = record.response === undefined; // true
 * ```
 */
export interface IdempotencyRecord {
  fingerprint: string;
  response: StoredResponse | undefined;
}

/**
 * The outcome of {@linkcode IdempotencyStore.claim}: either this request owns the key (with a `token` that later
 * completes or releases only this claim) or somebody else's record is there.
 *
 * @example Branch on a claim
 * ```ts
 * import type { IdempotencyClaim } from "./idempotency.ts";
 * const claim: IdempotencyClaim = { claimed: true, token: crypto.randomUUID() };
 * const mine = claim.claimed ? claim.token : undefined;
 * ```
 */
export type IdempotencyClaim = { claimed: true; token: string } | { claimed: false; record: IdempotencyRecord };

/**
 * Where idempotency keys live. Contract, which every implementation passes as the shared suite in
 * `idempotency_test.ts` checks:
 * - `claim` is atomic: of concurrent claims of one `(scope, key)`, exactly one gets `claimed: true`. A record whose
 *   expiry (`leaseUntil` while in flight, `expiresAt` once complete) is at or before `now` counts as absent.
 * - `complete` stores the response and the new expiry, and `release` deletes the record, both only while `token` is
 *   still the claim's (a claim whose lease ran out and was taken over is not touched).
 * - `purge` deletes every record expired at `now` and says how many.
 * `now` and expiries are epoch milliseconds from the middleware's clock.
 *
 * @example A store that remembers nothing, so every request runs
 * ```ts
 * import { idempotency, type IdempotencyStore } from "./idempotency.ts";
 * const forgetful: IdempotencyStore = {
 *   claim: () => Promise.resolve({ claimed: true, token: "t" }),
 *   complete: () => Promise.resolve(),
 *   release: () => Promise.resolve(),
 *   purge: () => Promise.resolve(0),
 * };
 * const middleware = idempotency(forgetful);
 * ```
 */
export interface IdempotencyStore {
  /** Claims `(scope, key)` for a request with `fingerprint`, in flight until `leaseUntil`, or returns the record there. */
  claim(scope: string, key: string, fingerprint: string, now: number, leaseUntil: number): Promise<IdempotencyClaim>;
  /** Stores the claimed request's response, kept until `expiresAt`. */
  complete(scope: string, key: string, token: string, response: StoredResponse, expiresAt: number): Promise<void>;
  /** Forgets the claim so the key can be used again (after a 5xx or a throw). */
  release(scope: string, key: string, token: string): Promise<void>;
  /** Deletes every record expired at `now`; resolves how many went. */
  purge(now: number): Promise<number>;
}

interface MemoryEntry {
  token: string;
  fingerprint: string;
  expiresAt: number;
  response: StoredResponse | undefined;
}

/**
 * Options for {@linkcode MemoryIdempotencyStore}.
 *
 * @example A store for a small service
 * ```ts
 * import { MemoryIdempotencyStore, type MemoryIdempotencyStoreOptions } from "./idempotency.ts";
 * const options: MemoryIdempotencyStoreOptions = { maxKeys: 1_000 };
 * const store = new MemoryIdempotencyStore(options);
 * ```
 */
export interface MemoryIdempotencyStoreOptions {
  /**
   * Most records held. A new key at the cap drops the oldest record (the earliest claimed), so under a flood of keys
   * a key can be forgotten before its TTL: its retry then runs the handler again.
   * @default {100000}
   */
  maxKeys?: number;
}

/**
 * An in-process {@linkcode IdempotencyStore}, for tests and single-process (embedded) deployments: each process
 * remembers only its own keys, at most `maxKeys` of them (expired ones go at each purge).
 *
 * @example Claim a key, then see it taken
 * ```ts
 * import { MemoryIdempotencyStore } from "./idempotency.ts";
 * const store = new MemoryIdempotencyStore();
 * const first = await store.claim("user:u-1", "k-1", "fp", 0, 60_000);
 * const second = await store.claim("user:u-1", "k-1", "fp", 1, 60_001);
 * [first.claimed, second.claimed]; // [true, false]
 * ```
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly #maxKeys: number;
  // Map order is claim order, oldest first: a new claim deletes and re-inserts its key.
  readonly #entries = new Map<string, MemoryEntry>();

  constructor(options: MemoryIdempotencyStoreOptions = {}) {
    this.#maxKeys = options.maxKeys ?? 100_000;
    if (!Number.isSafeInteger(this.#maxKeys) || this.#maxKeys < 1) {
      throw new RangeError(`Cannot hold idempotency keys for maxKeys: current value is ${this.#maxKeys}`);
    }
  }

  /** Number of records held, expired ones included until the next purge. */
  get size(): number {
    return this.#entries.size;
  }

  claim(scope: string, key: string, fingerprint: string, now: number, leaseUntil: number): Promise<IdempotencyClaim> {
    const id = memoryId(scope, key);
    const entry = this.#entries.get(id);
    if (entry && entry.expiresAt > now) {
      return Promise.resolve({ claimed: false, record: { fingerprint: entry.fingerprint, response: entry.response } });
    }
    const token = crypto.randomUUID();
    this.#entries.delete(id);
    if (this.#entries.size >= this.#maxKeys) this.#entries.delete(this.#entries.keys().next().value as string);
    this.#entries.set(id, { token, fingerprint, expiresAt: leaseUntil, response: undefined });
    return Promise.resolve({ claimed: true, token });
  }

  complete(scope: string, key: string, token: string, response: StoredResponse, expiresAt: number): Promise<void> {
    const entry = this.#entries.get(memoryId(scope, key));
    if (entry?.token === token) Object.assign(entry, { response, expiresAt });
    return Promise.resolve();
  }

  release(scope: string, key: string, token: string): Promise<void> {
    const id = memoryId(scope, key);
    if (this.#entries.get(id)?.token === token) this.#entries.delete(id);
    return Promise.resolve();
  }

  purge(now: number): Promise<number> {
    let n = 0;
    for (const [id, entry] of this.#entries) {
      if (entry.expiresAt <= now) {
        this.#entries.delete(id);
        n++;
      }
    }
    return Promise.resolve(n);
  }
}

function memoryId(scope: string, key: string): string {
  return `${scope}\u0000${key}`;
}

/**
 * Options for {@linkcode idempotency}.
 *
 * @example Keys kept for an hour, required on every covered request
 * ```ts
 * import { idempotency, type IdempotencyOptions, MemoryIdempotencyStore } from "./idempotency.ts";
 * const options: IdempotencyOptions = { ttlMs: 3_600_000, required: true };
 * const middleware = idempotency(new MemoryIdempotencyStore(), options);
 * ```
 */
export interface IdempotencyOptions {
  /** How long a finished request's response is kept for replay, in milliseconds. @default {86400000} */
  ttlMs?: number;
  /**
   * How long a claim stays in flight before another request may take the key over, in milliseconds: a bound on how
   * long a process that died mid-request blocks its key. Keep it above the longest request deadline.
   * @default {60000}
   */
  leaseMs?: number;
  /** Answer 400 to a covered request without `Idempotency-Key`. @default {false} */
  required?: boolean;
  /** The methods covered (upper case); others pass straight through. @default {["POST", "PATCH"]} */
  methods?: readonly string[];
  /**
   * Response headers stored and replayed (lower case); the rest (dates, request ids, cookies) belong to one answer.
   * @default {["content-type", "content-language", "location", "etag", "last-modified"]}
   */
  replayHeaders?: readonly string[];
  /** Largest request body fingerprinted; a covered request with a bigger one is answered 413. @default {1048576} */
  maxBodyBytes?: number;
  /** How often, at most, a request first purges expired keys, in milliseconds of `clock`. @default {60000} */
  purgeEveryMs?: number;
  /**
   * The key's namespace for a request: two requests share a key only within one scope. The default is the
   * authenticated principal (`currentContext()?.principal?.sub`), or `"anonymous"` without one.
   * @default {principal scope}
   */
  scope?: (req: Request) => string;
  /** Epoch milliseconds now; tests pass a fake. @default {Date.now} */
  clock?: () => number;
}

/** The response header that marks a replay. */
const REPLAYED = "idempotent-replayed";
const MAX_KEY_LENGTH = 255;
// sf-token characters (RFC 8941: tchar, ":" and "/"). The first character may also be a digit, so bare UUIDs, which
// clients send unquoted in practice, are accepted.
const BARE_KEY = /^[A-Za-z0-9!#$%&'*+.^_`|~:/-]+$/;
const NULL_BODY = new Set([101, 204, 205, 304]);

/**
 * Idempotency keys (the IETF `Idempotency-Key` header draft) for unsafe methods: a covered request carrying the header
 * runs at most once per key and scope (the principal by default, so users' keys never collide), and a retry gets the
 * first answer back.
 *
 * - The key is an RFC 8941 string (`"a-key"`) or a bare token (a UUID unquoted is fine), 1 to 255 characters;
 *   anything else is 400 problem+json (`bad-idempotency-key`), as is a missing key when `required`.
 * - The request is fingerprinted by method, path with query, and body bytes. First use claims the key as in flight,
 *   runs the handler and stores the status, the `replayHeaders` and the body.
 * - The same key with another fingerprint is 422 (`idempotency-key-mismatch`); while the first request is in flight
 *   it is 409 (`idempotency-key-in-flight`, `Retry-After: 1`); once done, the stored response is replayed with
 *   `Idempotent-Replayed: true`.
 * - Keys expire `ttlMs` after their request finished and are purged (at most every `purgeEveryMs`, by a request).
 * - A handler that answers 5xx or throws (any error, an `HttpError` 4xx included) releases the key, so the client may
 *   retry with it. Other answers (2xx, 3xx, 4xx) are stored and replayed.
 *
 * What is atomic, and what is not: the claim is one statement on its own (in a database store, its own transaction)
 * committed before the handler runs, and the response is stored after the handler returns. Neither is part of the
 * handler's own transaction. Two requests never run together for one key, and a replay never reruns the handler; but
 * if the process dies after the handler committed its effect and before the response was stored, the claim stays in
 * flight until `leaseMs`, and then a retry runs the handler again. A handler whose effect must happen once at most
 * also dedupes on the key in its own transaction (as orders does on `(customer_id, idempotency_key)`). If storing the
 * response fails, the client still gets the response; the key then stays in flight until the lease ends.
 *
 * Place it after authentication (for the principal scope) and inside `recovery()`. Response bodies are buffered.
 *
 * @example Replay a POST
 * ```ts
 * import { idempotency, MemoryIdempotencyStore } from "./idempotency.ts";
 * let created = 0;
 * const handler = idempotency(new MemoryIdempotencyStore())(async () => Response.json({ n: ++created }, { status: 201 }));
 * const post = () =>
 *   handler(new Request("http://x/things", { method: "POST", headers: { "idempotency-key": '"k-1"' }, body: "{}" }));
 * const first = await post();
 * const again = await post();
 * await first.json(); // { n: 1 }
 * await again.json(); // { n: 1 }
 * again.headers.get("idempotent-replayed"); // "true"
 * ```
 */
export function idempotency(store: IdempotencyStore, options: IdempotencyOptions = {}): Middleware {
  const ttlMs = positive("ttlMs", options.ttlMs ?? 86_400_000);
  const leaseMs = positive("leaseMs", options.leaseMs ?? 60_000);
  const maxBodyBytes = positive("maxBodyBytes", options.maxBodyBytes ?? 1024 * 1024);
  const purgeEveryMs = options.purgeEveryMs ?? 60_000;
  if (!(purgeEveryMs >= 0)) {
    throw new RangeError(`Cannot purge idempotency keys every purgeEveryMs: current value is ${purgeEveryMs}`);
  }
  const methods = new Set((options.methods ?? ["POST", "PATCH"]).map((m) => m.toUpperCase()));
  const replayHeaders = (options.replayHeaders ??
    ["content-type", "content-language", "location", "etag", "last-modified"]).map((h) => h.toLowerCase());
  const scopeOf = options.scope ?? principalScope;
  const clock = options.clock ?? Date.now;
  let lastPurge: number | undefined;

  return (next) =>
    async function idempotency(req) {
      if (!methods.has(req.method)) return await next(req);
      const header = req.headers.get("idempotency-key");
      if (header === null) {
        if (options.required) return badKey(`${req.method} ${new URL(req.url).pathname} needs an Idempotency-Key`);
        return await next(req);
      }
      const key = parseKey(header);
      if (key === undefined) {
        return badKey(
          `Idempotency-Key must be a structured-field string or token of 1 to ${MAX_KEY_LENGTH} characters`,
        );
      }
      const declared = Number(req.headers.get("content-length") ?? Number.NaN);
      const body = declared > maxBodyBytes ? undefined : await readUpTo(req.clone().body, maxBodyBytes);
      if (body === undefined) {
        return problemResponse(413, "payload-too-large", "Payload too large", {
          detail: `body exceeds ${maxBodyBytes} bytes`,
        });
      }
      const fp = await fingerprint(req, body);
      const scope = scopeOf(req);
      const now = clock();
      if (lastPurge === undefined || now - lastPurge >= purgeEveryMs) {
        lastPurge = now;
        await store.purge(now);
      }
      const claim = await store.claim(scope, key, fp, now, now + leaseMs);
      if (!claim.claimed) return answerTaken(claim.record, fp);

      let res: Response;
      try {
        res = await next(req);
      } catch (err) {
        // A lost release only delays the retry until the lease ends; the handler's error is the one to report.
        await store.release(scope, key, claim.token).catch(() => {});
        throw err;
      }
      if (res.status >= 500) {
        await store.release(scope, key, claim.token).catch(() => {});
        return res;
      }
      try {
        const stored: StoredResponse = {
          status: res.status,
          headers: replayHeaders.flatMap((h) => {
            const v = res.headers.get(h);
            return v === null ? [] : [[h, v] as [string, string]];
          }),
          body: new Uint8Array(await res.clone().arrayBuffer()),
        };
        await store.complete(scope, key, claim.token, stored, clock() + ttlMs);
      } catch {
        // The effect happened and this is its answer: the client gets it. The key stays in flight until its lease
        // ends (documented above), after which a retry runs the handler again.
      }
      return res;
    };
}

function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) {
    throw new RangeError(`Cannot use idempotency keys with ${name}: current value is ${value}`);
  }
  return value;
}

function principalScope(): string {
  const sub = currentContext()?.principal?.sub;
  return sub === undefined ? "anonymous" : `principal:${sub}`;
}

/** The key an `Idempotency-Key` value names, or `undefined` when it is malformed. */
function parseKey(header: string): string | undefined {
  // Long enough for 255 characters each escaped, and no longer, before any parsing.
  if (header.length === 0 || header.length > 2 * MAX_KEY_LENGTH + 2) return undefined;
  let key: string;
  if (header.startsWith('"')) {
    if (header.length < 2 || !header.endsWith('"')) return undefined;
    key = "";
    for (let i = 1; i < header.length - 1; i++) {
      let c = header[i];
      if (c === "\\") {
        c = header[++i];
        if (i >= header.length - 1 || (c !== '"' && c !== "\\")) return undefined;
      } else if (c === '"') return undefined;
      const code = c.charCodeAt(0);
      if (code < 0x20 || code > 0x7e) return undefined;
      key += c;
    }
  } else {
    if (!BARE_KEY.test(header)) return undefined;
    key = header;
  }
  return key.length >= 1 && key.length <= MAX_KEY_LENGTH ? key : undefined;
}

async function fingerprint(req: Request, body: Uint8Array): Promise<string> {
  const url = new URL(req.url);
  const head = new TextEncoder().encode(`${req.method}\n${url.pathname}${url.search}\n`);
  const all = new Uint8Array(head.byteLength + body.byteLength);
  all.set(head);
  all.set(body, head.byteLength);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function answerTaken(record: IdempotencyRecord, fp: string): Response {
  if (record.fingerprint !== fp) {
    return problemResponse(422, "idempotency-key-mismatch", "Idempotency-Key reused", {
      detail: "this Idempotency-Key was used for a different request (method, path or body)",
    });
  }
  if (record.response === undefined) {
    return problemResponse(409, "idempotency-key-in-flight", "Request in progress", {
      detail: "a request with this Idempotency-Key is still in progress; retry later",
      headers: { "retry-after": "1" },
    });
  }
  const { status, headers, body } = record.response;
  const replay = new Headers(headers);
  replay.set(REPLAYED, "true");
  return new Response(NULL_BODY.has(status) ? null : body, { status, headers: replay });
}

function badKey(detail: string): Response {
  return problemResponse(400, "bad-idempotency-key", "Bad Idempotency-Key", { detail });
}
