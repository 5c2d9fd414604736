import { type AttributeValue, decodeExport, type OtlpSpan } from "./otlp.ts";

/** The attribute the platform puts on its spans to name their service (see `SERVICE_ATTRIBUTE` in `./telemetry`). */
const SERVICE_ATTRIBUTE = "trellis.service";

/**
 * One span as the receiver's API returns it (`GET /api/traces/{traceId}`, `GET /api/traces`).
 *
 * @example Find the root of a trace
 * ```ts
 * import type { ReceivedSpan } from "./receiver.ts";
 * const rootOf = (spans: ReceivedSpan[]) => spans.find((s) => s.parentSpanId === null);
 * ```
 */
export interface ReceivedSpan {
  /** 32 lowercase hex digits. */
  traceId: string;
  /** 16 lowercase hex digits. */
  spanId: string;
  /** The parent's span id, `null` for a root span (the parent may live in a process that exported nothing). */
  parentSpanId: string | null;
  /**
   * The service the span ran in: its `trellis.service` attribute, else (unless it is a server or consumer span, which
   * starts a hop) its nearest ancestor's exported by the same process (Deno's automatic `fetch` spans inherit the
   * service that called), else the resource's `service.name`.
   */
  service: string;
  /** e.g. `POST /v1/orders`, `trellis.orders.v1.OrdersService/CreateOrder`, `SELECT orders`, `publish orders.events`. */
  name: string;
  kind: "unspecified" | "internal" | "server" | "client" | "producer" | "consumer";
  /** Start, in milliseconds since the Unix epoch (fractional: microseconds survive). */
  startUnixMs: number;
  /** Duration in milliseconds (fractional). */
  durationMs: number;
  /** `error` when the span failed; `message` says why. */
  status: { code: "unset" | "ok" | "error"; message?: string };
  attributes: Record<string, AttributeValue>;
  /** Timed events on the span, such as `exception` with its `exception.message`. */
  events: { name: string; timeUnixMs: number; attributes: Record<string, AttributeValue> }[];
  /** Spans this one is linked to without being their child. */
  links: { traceId: string; spanId: string }[];
  /** The instrumentation scope: `deno` for Deno's automatic HTTP spans, `trellis` for the platform's. */
  scope: string;
}

/**
 * A trace as the receiver's API returns it: its spans in start order.
 *
 * @example Count the services a trace crossed
 * ```ts
 * import type { ReceivedTrace } from "./receiver.ts";
 * const services = (t: ReceivedTrace) => new Set(t.spans.map((s) => s.service)).size;
 * ```
 */
export interface ReceivedTrace {
  traceId: string;
  spans: ReceivedSpan[];
}

/**
 * Options for {@linkcode TraceStore}.
 *
 * @example Keep only the last hundred traces
 * ```ts
 * import { TraceStore } from "./receiver.ts";
 * const store = new TraceStore({ maxTraces: 100 });
 * ```
 */
export interface TraceStoreOptions {
  /** Traces kept; the one updated longest ago goes first. @default {1000} */
  maxTraces?: number;
  /** Spans kept per trace; later ones are dropped. @default {10000} */
  maxSpansPerTrace?: number;
}

interface Stored {
  span: OtlpSpan;
  /** Identifies the exporting process, to inherit services only within one. */
  process: string;
}

const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"] as const;
const CODES = ["unset", "ok", "error"] as const;

/**
 * The last N traces in memory, fed with OTLP export bodies.
 *
 * @example Feed it an export and read a trace back
 * ```ts
 * import { TraceStore } from "./receiver.ts";
 * const store = new TraceStore();
 * const body = { resourceSpans: [{ resource: { attributes: [] }, scopeSpans: [{ scope: { name: "trellis" }, spans: [{
 *   traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", name: "work", kind: 1,
 *   startTimeUnixNano: "1000000", endTimeUnixNano: "3000000", status: {},
 *   attributes: [{ key: "trellis.service", value: { stringValue: "orders" } }],
 * }] }] }] };
 * store.add(new TextEncoder().encode(JSON.stringify(body)), "application/json");
 * store.trace("4bf92f3577b34da6a3ce929d0e0e4736")?.spans[0].service; // "orders"
 * ```
 */
export class TraceStore {
  #traces = new Map<string, Map<string, Stored>>();
  #maxTraces: number;
  #maxSpans: number;

  constructor(options: TraceStoreOptions = {}) {
    this.#maxTraces = options.maxTraces ?? 1000;
    this.#maxSpans = options.maxSpansPerTrace ?? 10_000;
    if (!(this.#maxTraces >= 1)) {
      throw new RangeError(`Cannot keep maxTraces traces: current value is ${this.#maxTraces}`);
    }
  }

  /** Decodes an OTLP/HTTP trace export (protobuf or JSON by `contentType`) and keeps its spans; returns how many. */
  add(body: Uint8Array, contentType: string): number {
    const spans = decodeExport(body, contentType);
    for (const span of spans) {
      if (!/^[0-9a-f]{32}$/.test(span.traceId) || !/^[0-9a-f]{16}$/.test(span.spanId)) continue;
      let trace = this.#traces.get(span.traceId);
      if (trace) this.#traces.delete(span.traceId);
      else trace = new Map();
      this.#traces.set(span.traceId, trace);
      if (trace.size < this.#maxSpans || trace.has(span.spanId)) {
        trace.set(span.spanId, { span, process: JSON.stringify(span.resource) });
      }
    }
    while (this.#traces.size > this.#maxTraces) this.#traces.delete(this.#traces.keys().next().value!);
    return spans.length;
  }

  /** The trace with this id, or `undefined` when none of its spans arrived (or it was evicted). */
  trace(traceId: string): ReceivedTrace | undefined {
    const trace = this.#traces.get(traceId.toLowerCase());
    return trace && { traceId: traceId.toLowerCase(), spans: resolve(trace) };
  }

  /** The most recently updated traces first, at most `limit`, only those with a span of `service` when given. */
  traces(options: { service?: string; limit?: number } = {}): ReceivedTrace[] {
    const { service, limit = 20 } = options;
    const out: ReceivedTrace[] = [];
    for (const [traceId, trace] of [...this.#traces].reverse()) {
      if (out.length >= limit) break;
      const spans = resolve(trace);
      if (service === undefined || spans.some((s) => s.service === service)) out.push({ traceId, spans });
    }
    return out;
  }
}

function resolve(trace: Map<string, Stored>): ReceivedSpan[] {
  const services = new Map<string, string>();
  const serviceOf = (stored: Stored, depth = 0): string => {
    const known = services.get(stored.span.spanId);
    if (known !== undefined) return known;
    const own = stored.span.attributes[SERVICE_ATTRIBUTE];
    let service: string | undefined = typeof own === "string" ? own : undefined;
    const parent = stored.span.parentSpanId ? trace.get(stored.span.parentSpanId) : undefined;
    // A server or consumer span starts a new hop: in one process hosting several services, its parent is another's.
    const hop = stored.span.kind === 2 || stored.span.kind === 5;
    if (service === undefined && !hop && parent && parent.process === stored.process && depth < 256) {
      service = serviceOf(parent, depth + 1);
    }
    service ??= String(stored.span.resource["service.name"] ?? "unknown");
    services.set(stored.span.spanId, service);
    return service;
  };
  return [...trace.values()].map((stored) => toJson(stored.span, serviceOf(stored)))
    .sort((a, b) => a.startUnixMs - b.startUnixMs);
}

function toJson(s: OtlpSpan, service: string): ReceivedSpan {
  const ms = (ns: bigint) => Number(ns / 1000n) / 1000;
  return {
    traceId: s.traceId,
    spanId: s.spanId,
    parentSpanId: s.parentSpanId ?? null,
    service,
    name: s.name,
    kind: KINDS[s.kind] ?? "unspecified",
    startUnixMs: ms(s.startTimeUnixNano),
    durationMs: Number((s.endTimeUnixNano - s.startTimeUnixNano) / 1000n) / 1000,
    status: s.status.message
      ? { code: CODES[s.status.code] ?? "unset", message: s.status.message }
      : { code: CODES[s.status.code] ?? "unset" },
    attributes: s.attributes,
    events: s.events.map((e) => ({ name: e.name, timeUnixMs: ms(e.timeUnixNano), attributes: e.attributes })),
    links: s.links,
    scope: s.scope,
  };
}

/**
 * Options for {@linkcode startTraceReceiver}.
 *
 * @example A receiver on a fixed port, all interfaces
 * ```ts
 * import type { TraceReceiverOptions } from "./receiver.ts";
 * const options: TraceReceiverOptions = { port: 4318, hostname: "0.0.0.0" };
 * ```
 */
export interface TraceReceiverOptions extends TraceStoreOptions {
  /** 0 picks a free port. @default {0} */
  port?: number;
  /** @default {"127.0.0.1"} */
  hostname?: string;
  /** Largest export body accepted (413 beyond it). @default {16777216} */
  maxBodyBytes?: number;
}

/**
 * A running trace receiver: `url` is what `OTEL_EXPORTER_OTLP_ENDPOINT` should name.
 *
 * @example Point a child process's exporter at it
 * ```ts
 * import { startTraceReceiver } from "./receiver.ts";
 * await using receiver = startTraceReceiver();
 * const env = { OTEL_DENO: "true", OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
 * ```
 */
export interface TraceReceiver extends AsyncDisposable {
  readonly url: string;
  readonly store: TraceStore;
  /** Stops serving; idempotent. */
  close(): Promise<void>;
}

/**
 * Serves a small OTLP/HTTP trace receiver, for local runs and tests:
 *
 * - `POST /v1/traces`: an OTLP export, `application/x-protobuf` (Deno's default) or `application/json`; kept in a
 *   {@linkcode TraceStore}. `POST /v1/logs` and `/v1/metrics`, which Deno's exporter also sends, are accepted and
 *   dropped.
 * - `GET /api/traces/{traceId}`: `{ traceId, spans: ReceivedSpan[] }`, 404 when unknown.
 * - `GET /api/traces?service=&limit=`: `{ traces: [{ traceId, spans }] }`, most recently updated first (limit 20 by
 *   default, at most 1000).
 *
 * Run it in a process without `OTEL_DENO`: an instrumented receiver would trace its own exports.
 *
 * @example Receive the spans of a child process
 * ```ts
 * import { startTraceReceiver } from "./receiver.ts";
 * await using receiver = startTraceReceiver({ maxTraces: 100 });
 * const res = await fetch(`${receiver.url}/api/traces?limit=5`);
 * (await res.json()).traces; // []
 * ```
 */
export function startTraceReceiver(options: TraceReceiverOptions = {}): TraceReceiver {
  const store = new TraceStore(options);
  const maxBody = options.maxBodyBytes ?? 16 << 20;
  const server = Deno.serve({
    port: options.port ?? 0,
    hostname: options.hostname ?? "127.0.0.1",
    onListen: () => {},
  }, (req) => handle(req, store, maxBody));
  let closing: Promise<void> | undefined;
  const close = () => closing ??= server.shutdown();
  const host = server.addr.hostname.includes(":") ? `[${server.addr.hostname}]` : server.addr.hostname;
  return { url: `http://${host}:${server.addr.port}`, store, close, [Symbol.asyncDispose]: close };
}

async function handle(req: Request, store: TraceStore, maxBody: number): Promise<Response> {
  const url = new URL(req.url);
  const path = url.pathname;
  if (req.method === "POST" && (path === "/v1/traces" || path === "/v1/logs" || path === "/v1/metrics")) {
    const contentType = req.headers.get("content-type") ?? "application/x-protobuf";
    const body = await readBody(req, maxBody);
    if (!body) return problem(413, "too-large", `an export may be at most ${maxBody} bytes`);
    if (path === "/v1/traces") {
      try {
        store.add(body, contentType);
      } catch (err) {
        return problem(400, "bad-export", `cannot decode the export: ${(err as Error).message}`);
      }
    }
    return contentType.includes("json")
      ? Response.json({})
      : new Response(new Uint8Array(), { headers: { "content-type": "application/x-protobuf" } });
  }
  if (req.method === "GET" && path === "/api/traces") {
    const limit = Number(url.searchParams.get("limit") ?? 20);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      return problem(400, "bad-limit", `limit must be an integer from 1 to 1000: current value is ${limit}`);
    }
    const service = url.searchParams.get("service") || undefined;
    return Response.json({ traces: store.traces({ service, limit }) });
  }
  const match = /^\/api\/traces\/([^/]+)$/.exec(path);
  if (req.method === "GET" && match) {
    if (!/^[0-9a-fA-F]{32}$/.test(match[1])) {
      return problem(400, "bad-trace-id", `a trace id is 32 hex digits: current value is ${match[1]}`);
    }
    const trace = store.trace(match[1]);
    return trace ? Response.json(trace) : problem(404, "not-found", `no trace ${match[1]} received`);
  }
  if (req.method === "GET" && path === "/healthz") return Response.json({ status: "ok", service: "traces" });
  return problem(404, "not-found", `no route for ${req.method} ${path}`);
}

async function readBody(req: Request, max: number): Promise<Uint8Array | undefined> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const gzip = req.headers.get("content-encoding") === "gzip"; // OTEL_EXPORTER_OTLP_COMPRESSION=gzip
  const stream = gzip ? req.body?.pipeThrough(new DecompressionStream("gzip")) : req.body;
  for await (const chunk of stream ?? []) {
    size += chunk.length;
    if (size > max) return undefined;
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function problem(status: number, type: string, detail: string): Response {
  return new Response(JSON.stringify({ type: `https://trellis.dev/problems/${type}`, title: type, status, detail }), {
    status,
    headers: { "content-type": "application/problem+json" },
  });
}
