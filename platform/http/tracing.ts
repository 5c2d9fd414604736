import { currentContext, parseTraceparent } from "../context/mod.ts";

export { parseTraceparent };
import { editHeaders } from "./_headers.ts";
import { invoke, type Middleware } from "./handler.ts";
import { activeTraceparent } from "../telemetry/mod.ts";

/**
 * The W3C trace context of one request as {@linkcode tracing} sees it.
 *
 * @example Log the span of each request
 * ```ts
 * import { type TraceContext, tracing } from "./tracing.ts";
 * const logSpan = (_req: Request, trace: TraceContext) => console.debug(trace.traceId, trace.spanId, trace.sampled);
 * const middleware = tracing({ onStart: logSpan });
 * ```
 */
export interface TraceContext {
  /** 32 lowercase hex digits: the caller's trace id, or a new one. */
  traceId: string;
  /** 16 lowercase hex digits: this hop's span, new for every request. */
  spanId: string;
  /** The caller's span id, when a valid `traceparent` arrived. */
  parentSpanId?: string;
  /** Whether the trace is sampled (the caller's flag; new traces are sampled). */
  sampled: boolean;
  /** `traceparent` for downstream calls: this trace, with `spanId` as the parent. */
  traceparent: string;
}

/**
 * Options for {@linkcode tracing}.
 *
 * @example Time every request
 * ```ts
 * import { tracing, type TracingOptions } from "./tracing.ts";
 * const options: TracingOptions = { onEnd: (req, res, ms) => console.debug(req.method, res?.status, `${ms} ms`) };
 * const middleware = tracing(options);
 * ```
 */
export interface TracingOptions {
  /**
   * Called before the handler. An exception fails the request, so keep hooks from throwing.
   *
   * @example
   * ```ts
   * import { tracing } from "./tracing.ts";
   * tracing({ onStart: (req, trace) => console.debug("start", req.method, trace.traceId) });
   * ```
   * @default {undefined}
   */
  onStart?: (req: Request, trace: TraceContext) => void;
  /**
   * Called once the handler settles, with its response (`undefined` when it threw) and duration in milliseconds.
   *
   * @example
   * ```ts
   * import { tracing } from "./tracing.ts";
   * tracing({ onEnd: (_req, res, ms, trace) => console.debug(trace.spanId, res?.status ?? "threw", ms) });
   * ```
   * @default {undefined}
   */
  onEnd?: (req: Request, res: Response | undefined, ms: number, trace: TraceContext) => void;
  /**
   * Whether to send this hop's `traceparent` back on the response, so a client can find the trace.
   *
   * @example
   * ```ts
   * import { tracing } from "./tracing.ts";
   * tracing({ responseHeader: false });
   * ```
   * @default {true}
   */
  responseHeader?: boolean;
}

/**
 * W3C trace context for HTTP: keeps the trace id of a valid incoming `traceparent` (else starts a trace), gives the
 * request a new span id, and stores both on the current context (`ctx.traceId`, and `ctx.traceparent` naming this
 * span, so `contextHeaders()` carries it on every downstream call). Runs the optional hooks around the handler.
 * Place it inside `requestContext()`; without a context the hooks still get the trace.
 *
 * @example Log trace ids
 * ```ts
 * import { chain } from "./handler.ts";
 * import { requestContext } from "./middleware.ts";
 * import { tracing } from "./tracing.ts";
 * const h = chain(requestContext(), tracing({ onEnd: (_req, res, ms, t) => void [t.traceId, res?.status, ms] }))(
 *   async () => new Response("ok"),
 * );
 * const res = await h(new Request("http://api/", {
 *   headers: { traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
 * }));
 * res.headers.get("traceparent"); // "00-4bf92f3577b34da6a3ce929d0e0e4736-<new span id>-01"
 * ```
 */
export function tracing(options: TracingOptions = {}): Middleware {
  const { onStart, onEnd, responseHeader = true } = options;
  return (next) =>
    function tracing(req) {
      const trace = fromActiveSpan(req.headers.get("traceparent")) ?? traceFrom(req.headers.get("traceparent"));
      const ctx = currentContext();
      if (ctx) {
        ctx.traceId = trace.traceId;
        ctx.traceparent = trace.traceparent;
      }
      onStart?.(req, trace);
      const start = onEnd ? performance.now() : 0;
      return invoke(next, req).then((res) => {
        onEnd?.(req, res, performance.now() - start, trace);
        if (!responseHeader) return res;
        return editHeaders(res, (h) => h.set("traceparent", trace.traceparent));
      }, (err) => {
        onEnd?.(req, undefined, performance.now() - start, trace);
        throw err;
      });
    };
}

const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);

function traceFrom(header: string | null): TraceContext {
  const parent = parseTraceparent(header);
  const spanId = randomHex(8, ZERO_SPAN);
  if (parent) {
    const { traceId, parentSpanId, sampled } = parent;
    return { traceId, spanId, parentSpanId, sampled, traceparent: format(traceId, spanId, sampled) };
  }
  const traceId = randomHex(16, ZERO_TRACE);
  return { traceId, spanId, sampled: true, traceparent: format(traceId, spanId, true) };
}

/** With tracing on, Deno's server span for this request (it already continued the incoming trace) is this hop. */
function fromActiveSpan(header: string | null): TraceContext | undefined {
  const traceparent = activeTraceparent();
  const active = traceparent ? parseTraceparent(traceparent) : undefined;
  if (!traceparent || !active) return undefined;
  const { traceId, parentSpanId: spanId, sampled } = active;
  const parent = parseTraceparent(header);
  return {
    traceId,
    spanId,
    parentSpanId: parent?.traceId === traceId ? parent.parentSpanId : undefined,
    sampled,
    traceparent,
  };
}

function format(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
// One getRandomValues call per 4 KiB of ids (hundreds of requests) instead of one per id.
const pool = new Uint8Array(4096);
let poolAt = pool.length;

function randomHex(bytes: number, invalid: string): string {
  let out: string;
  do {
    if (poolAt + bytes > pool.length) {
      crypto.getRandomValues(pool);
      poolAt = 0;
    }
    out = "";
    for (let i = 0; i < bytes; i++) out += HEX[pool[poolAt++]];
  } while (out === invalid);
  return out;
}
