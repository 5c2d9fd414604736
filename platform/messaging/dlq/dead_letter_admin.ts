import { authenticate, requireScopes, type Verifier } from "../../auth/mod.ts";
import {
  badRequest,
  chain,
  errorResponse,
  type Handler,
  HttpError,
  json,
  type Middleware,
  notFound,
  readJson,
  Router,
} from "../../http/mod.ts";
import type { PubSub } from "../message.ts";
import { type DeadLetterFilter, parseDeadLetterFilter } from "./dead_letter_filter.ts";
import { type DeadLetter, type DeadLetterQueue, openDeadLetterQueue } from "./dead_letter_queue.ts";

/**
 * One dead-letter topic a service's admin endpoints serve, on the bus its consumers use.
 *
 * @example The dead letters of the inventory commands on the events bus
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import type { DeadLetterSource } from "./dead_letter_admin.ts";
 * const bus = createMemoryBroker();
 * const source: DeadLetterSource = { topic: "inventory.commands.dlq", bus: () => Promise.resolve(bus) };
 * await bus.close();
 * ```
 */
export interface DeadLetterSource {
  /** The dead-letter topic (`<source>.dlq` for a `MessageRouter` subscription). */
  topic: string;
  /** The bus holding it, connected on first use (as `Infra.events()`). */
  bus: () => Promise<PubSub>;
}

/**
 * Options for {@linkcode deadLetterAdmin}.
 *
 * @example Serve two dead-letter topics to tokens for the orders service
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { createVerifier, staticKeySet } from "../../auth/mod.ts";
 * import type { DeadLetterAdminOptions } from "./dead_letter_admin.ts";
 * const bus = createMemoryBroker();
 * const options: DeadLetterAdminOptions = {
 *   verifier: createVerifier({ issuer: "https://auth", audience: "orders", keys: staticKeySet([]) }),
 *   sources: ["inventory.events.dlq", "payments.events.dlq"].map((topic) => ({ topic, bus: () => Promise.resolve(bus) })),
 *   maxRatePerSec: 100,
 * };
 * await bus.close();
 * ```
 */
export interface DeadLetterAdminOptions {
  /** Verifies the bearer token (addressed to this service). */
  verifier: Pick<Verifier, "verify">;
  /** The service's dead-letter topics. */
  sources: readonly DeadLetterSource[];
  /** The scope a token needs. @default {"ops:dlq"} */
  scope?: string;
  /** Redrive rate when the request names none, letters per second. @default {10} */
  defaultRatePerSec?: number;
  /** Highest redrive rate a request may ask for. @default {1000} */
  maxRatePerSec?: number;
}

/**
 * The management endpoints for a service's dead letters (the book's dual API: operations over HTTP beside the
 * service's own API), as a middleware: requests under `/admin/dlq` are served here, all others go to `next`. Every
 * request needs a bearer token that `verifier` accepts with scope `ops:dlq` (401 without one, 403 without the scope).
 * It needs a request context opened further out, as `Service` does. Errors are `application/problem+json`.
 *
 * A letter's `id` is `<dlq topic>@<position>` (the position being the JetStream sequence, the Kafka
 * `<partition>-<offset>`, or the in-memory offset): opaque to clients, stable until the letter is redriven or purged.
 * Times are ISO 8601. Filters (query or body) take `source` (exact source topic), `error` (substring),
 * `failedAfter` (inclusive) and `failedBefore` (exclusive).
 *
 * - `GET /admin/dlq?source=&error=&failedAfter=&failedBefore=&limit=` (limit 1–1000, default 100) → 200
 *   `{"letters": [Summary...]}`, oldest first per topic, topics in `sources` order, where Summary is
 *   `{"id", "topic", "messageId", "key"?, "sourceTopic"?, "error"?, "attempts"?, "failedAt"?, "redrives", "bytes",
 *   "timestamp"}` (`timestamp`: when it was dead-lettered, epoch ms).
 * - `GET /admin/dlq/{id}` → 200 Summary plus `"headers": {...}`, `"payload": string` and `"payloadEncoding":
 *   "utf-8" | "base64"` (UTF-8 text when the payload is valid UTF-8, else base64); 404 for an unknown id.
 * - `POST /admin/dlq/redrive` with `{"ids"?: string[], "filter"?: Filter, "ratePerSec"?: number}` → 200
 *   `{"redriven": n}`: the letters picked (all when neither `ids` nor `filter`) go back to their source topics at most
 *   `ratePerSec` per second (default 10, at most 1000), each removed only after its publish succeeded. The response
 *   comes when all moved; a client that goes away stops the redrive between two letters.
 * - `POST /admin/dlq/purge` with `{"ids"?: string[], "filter"?: Filter, "all"?: true}` → 200 `{"purged": n}`; without
 *   `ids`, `filter` or `"all": true` it is refused with 400.
 *
 * Bad input answers 400 (malformed JSON, unknown fields, wrong types, a malformed id in `ids`), a body that is not
 * JSON 415; unknown ids in `ids` are skipped. A bus that retains nothing (NATS Core) answers 501.
 *
 * @example Wire the endpoints into a service (one line) and list its dead letters
 * ```ts
 * import { createMemoryBroker } from "../adapters/memory.ts";
 * import { createIssuer, createVerifier, generateSigningKey, staticKeySet } from "../../auth/mod.ts";
 * import { chain, requestContext } from "../../http/mod.ts";
 * import { deadLetterAdmin } from "./dead_letter_admin.ts";
 * const key = await generateSigningKey();
 * const verifier = createVerifier({ issuer: "https://auth", audience: "orders", keys: staticKeySet([key]) });
 * const bus = createMemoryBroker();
 * const app = () => Promise.resolve(new Response("the service's own API"));
 * const handler = chain(
 *   requestContext(),
 *   deadLetterAdmin({ verifier, sources: [{ topic: "payments.events.dlq", bus: () => Promise.resolve(bus) }] }),
 * )(app);
 * const token = await createIssuer({ issuer: "https://auth", key }).issue({
 *   sub: "ops",
 *   aud: "orders",
 *   scopes: ["ops:dlq"],
 *   ttlSeconds: 60,
 * });
 * const res = await handler(new Request("http://orders/admin/dlq?limit=10", { headers: { authorization: `Bearer ${token}` } }));
 * console.log(res.status, await res.json()); // 200 { letters: [] }
 * await bus.close();
 * ```
 */
export function deadLetterAdmin(options: DeadLetterAdminOptions): Middleware {
  const scope = options.scope ?? "ops:dlq";
  const maxRatePerSec = options.maxRatePerSec ?? 1000;
  const defaultRatePerSec = options.defaultRatePerSec ?? 10;
  if (!(maxRatePerSec > 0) || !(defaultRatePerSec > 0) || defaultRatePerSec > maxRatePerSec) {
    throw new RangeError(
      `Cannot serve dead-letter admin as the rates are not positive with defaultRatePerSec <= maxRatePerSec: current values are ${defaultRatePerSec} and ${maxRatePerSec}`,
    );
  }
  const topics = new Set(options.sources.map((s) => s.topic));
  if (topics.size !== options.sources.length) {
    throw new TypeError("Cannot serve dead-letter admin as a topic is listed twice in sources");
  }

  const queues = async (): Promise<DeadLetterQueue[]> => {
    const out: DeadLetterQueue[] = [];
    for (const source of options.sources) {
      const bus = await source.bus();
      if (!bus.deadLetters) {
        throw new HttpError(501, "not-implemented", "Not implemented", {
          detail: `the bus holding ${source.topic} retains no messages, so it has no dead letters to operate on`,
        });
      }
      out.push(openDeadLetterQueue(bus, source.topic));
    }
    return out;
  };
  /** The letter ids of a body grouped by topic; refuses malformed ones, keeps those of unknown topics out. */
  const byTopic = (ids: readonly string[]): Map<string, string[]> => {
    const out = new Map<string, string[]>();
    for (const id of ids) {
      const parsed = parseId(id);
      if (!parsed) throw badRequest(`ids: ${JSON.stringify(id)} is not a letter id (<topic>@<position>)`);
      if (!topics.has(parsed.topic)) continue;
      out.set(parsed.topic, [...out.get(parsed.topic) ?? [], parsed.ref]);
    }
    return out;
  };

  const router = new Router()
    .get("/admin/dlq", async (req) => {
      const params = new URL(req.url).searchParams;
      const limit = params.has("limit") ? Number(params.get("limit")) : 100;
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw badRequest(`limit must be an integer from 1 to 1000, got ${JSON.stringify(params.get("limit"))}`);
      }
      const query: Record<string, string> = {};
      for (const [k, v] of params) if (k !== "limit" && v !== "") query[k] = v;
      const filter = filterOf(query);
      const letters: Record<string, unknown>[] = [];
      for (const queue of await queues()) {
        if (letters.length >= limit) break;
        const found = await queue.list({ limit: limit - letters.length, filter, signal: req.signal });
        for (const l of found) letters.push(summary(queue.topic, l));
      }
      return json({ letters });
    })
    .get("/admin/dlq/:id", async (_req, { id }) => {
      const parsed = parseId(id);
      const queue = parsed && (await queues()).find((q) => q.topic === parsed.topic);
      const letter = queue && await queue.get(parsed.ref);
      if (!letter) throw notFound(`no dead letter ${id}`);
      return json(detail(queue.topic, letter));
    })
    .post("/admin/dlq/redrive", async (req) => {
      const body = await bodyOf(req, ["ids", "filter", "ratePerSec"]);
      const ratePerSec = body.ratePerSec ?? defaultRatePerSec;
      if (typeof ratePerSec !== "number" || !(ratePerSec > 0) || ratePerSec > maxRatePerSec) {
        throw badRequest(`ratePerSec must be a number above 0 and at most ${maxRatePerSec}, got ${show(ratePerSec)}`);
      }
      const { ids, filter } = pickOf(body);
      const grouped = ids && byTopic(ids);
      let redriven = 0;
      for (const queue of await queues()) {
        if (req.signal.aborted) break;
        const refs = grouped?.get(queue.topic);
        if (grouped && !refs) continue;
        redriven += await queue.redrive({ ids: refs, filter, ratePerSec, signal: req.signal });
      }
      return json({ redriven });
    })
    .post("/admin/dlq/purge", async (req) => {
      const body = await bodyOf(req, ["ids", "filter", "all"]);
      if (body.all !== undefined && body.all !== true) {
        throw badRequest(`all must be true when given, got ${show(body.all)}`);
      }
      const { ids, filter } = pickOf(body);
      if (!ids && !filter && body.all !== true) {
        throw badRequest('a purge needs "ids", "filter" or "all": true; an empty body purges nothing');
      }
      const grouped = ids && byTopic(ids);
      let purged = 0;
      for (const queue of await queues()) {
        const refs = grouped?.get(queue.topic);
        if (grouped && !refs) continue;
        purged += await queue.purge(refs || filter ? { ids: refs, filter } : { all: true });
      }
      return json({ purged });
    });

  const admin: Handler = chain(authenticate(options.verifier), requireScopes(scope))(async (req) => {
    try {
      return await router.handler(req);
    } catch (err) {
      return errorResponse(err);
    }
  });
  return (next) =>
    function deadLetterAdmin(req) {
      const { pathname } = new URL(req.url);
      return pathname === "/admin/dlq" || pathname.startsWith("/admin/dlq/") ? admin(req) : next(req);
    };
}

function parseId(id: string): { topic: string; ref: string } | undefined {
  const at = id.lastIndexOf("@");
  if (at <= 0 || at === id.length - 1) return undefined;
  return { topic: id.slice(0, at), ref: id.slice(at + 1) };
}

function filterOf(value: unknown): DeadLetterFilter | undefined {
  try {
    const filter = parseDeadLetterFilter(value);
    return Object.keys(filter).length > 0 ? filter : undefined;
  } catch (err) {
    throw badRequest((err as Error).message);
  }
}

async function bodyOf(req: Request, fields: string[]): Promise<Record<string, unknown>> {
  const body = await readJson(req, { maxBytes: 256 * 1024 });
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badRequest(`the body must be a JSON object, got ${show(body)}`);
  }
  const unknown = Object.keys(body).filter((k) => !fields.includes(k));
  if (unknown.length > 0) throw badRequest(`unknown fields ${unknown.join(", ")}; known are ${fields.join(", ")}`);
  return body as Record<string, unknown>;
}

function pickOf(body: Record<string, unknown>): { ids?: string[]; filter?: DeadLetterFilter } {
  const { ids } = body;
  if (ids !== undefined && (!Array.isArray(ids) || ids.some((id) => typeof id !== "string"))) {
    throw badRequest(`ids must be an array of strings, got ${show(ids)}`);
  }
  return { ids: ids as string[] | undefined, filter: body.filter === undefined ? undefined : filterOf(body.filter) };
}

function summary(topic: string, l: DeadLetter): Record<string, unknown> {
  return {
    id: `${topic}@${l.id}`,
    topic,
    messageId: l.messageId,
    key: l.key,
    sourceTopic: l.sourceTopic,
    error: l.error,
    attempts: l.attempts,
    failedAt: l.failedAt,
    redrives: l.redrives,
    bytes: l.payload.byteLength,
    timestamp: l.timestamp,
  };
}

function detail(topic: string, l: DeadLetter): Record<string, unknown> {
  let payload: string;
  let payloadEncoding: "utf-8" | "base64";
  try {
    payload = new TextDecoder("utf-8", { fatal: true }).decode(l.payload);
    payloadEncoding = "utf-8";
  } catch {
    payload = btoa(Array.from(l.payload, (b) => String.fromCharCode(b)).join(""));
    payloadEncoding = "base64";
  }
  return { ...summary(topic, l), headers: l.headers, payload, payloadEncoding };
}

function show(v: unknown): string {
  return v === undefined ? "nothing" : JSON.stringify(v) ?? typeof v;
}
