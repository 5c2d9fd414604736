import {
  type Attributes as OtelAttributes,
  type Context as OtelContext,
  context as otelContext,
  createContextKey,
  type Link,
  ROOT_CONTEXT,
  type Span as OtelSpan,
  SpanKind as OtelSpanKind,
  SpanStatusCode,
  trace,
} from "@opentelemetry/api";
import { parseTraceparent } from "../context/mod.ts";

/**
 * OpenTelemetry's span kinds (`@opentelemetry/api`'s `SpanKind`): SERVER and CLIENT for a synchronous call,
 * PRODUCER and CONSUMER for a message, INTERNAL otherwise.
 *
 * @example A consumer span
 * ```ts
 * import { inSpan, SpanKind } from "./spans.ts";
 * await inSpan("process orders.events", { kind: SpanKind.CONSUMER }, async () => {});
 * ```
 */
export const SpanKind: typeof OtelSpanKind = OtelSpanKind;
/**
 * A span kind, one of {@linkcode SpanKind}'s values.
 *
 * @example A kind chosen by direction
 * ```ts
 * import { SpanKind } from "./spans.ts";
 * const kind: SpanKind = Math.random() < 0.5 ? SpanKind.PRODUCER : SpanKind.CONSUMER;
 * ```
 */
export type SpanKind = OtelSpanKind;

/**
 * A span as `@opentelemetry/api` gives it: set attributes, record exceptions, read its `spanContext()`.
 *
 * @example Tag the current step
 * ```ts
 * import { inSpan, type Span } from "./spans.ts";
 * const tag = (span: Span | undefined) => void span?.setAttribute("order.id", "o-1");
 * await inSpan("step", {}, tag);
 * ```
 */
export type Span = OtelSpan;

/**
 * Span attributes: string keys to strings, numbers, booleans or arrays of them.
 *
 * @example Attributes of a messaging span
 * ```ts
 * import type { Attributes } from "./spans.ts";
 * const attributes: Attributes = { "messaging.system": "kafka", "messaging.destination.name": "orders.events" };
 * ```
 */
export type Attributes = OtelAttributes;

/**
 * The span attribute naming the service a span belongs to. OpenTelemetry's `service.name` is a resource attribute,
 * one per process; in embedded mode one process hosts all six services, so every span made through this package also
 * carries the service it ran in (from {@linkcode withService}). The platform's trace receiver prefers it to the
 * resource's `service.name`.
 *
 * @example Read the service of an exported span's attributes
 * ```ts
 * import { SERVICE_ATTRIBUTE } from "./spans.ts";
 * const serviceOf = (attributes: Record<string, unknown>) => attributes[SERVICE_ATTRIBUTE];
 * ```
 */
export const SERVICE_ATTRIBUTE = "trellis.service";

/**
 * Whether spans are recorded: true when the process started with `OTEL_DENO=true` (Deno's built-in OpenTelemetry,
 * which exports them over OTLP/HTTP). Read once at load; when false every helper here runs its function directly,
 * so instrumentation costs a branch.
 *
 * @example Skip building span attributes when nothing records them
 * ```ts
 * import { tracingEnabled } from "./spans.ts";
 * const attributes = tracingEnabled ? { "db.system": "postgresql" } : undefined;
 * ```
 */
export const tracingEnabled: boolean = readEnabled();

function readEnabled(): boolean {
  try {
    const value = Deno.env.get("OTEL_DENO")?.toLowerCase();
    return value === "true" || value === "1";
  } catch {
    return false; // no env permission: Deno's exporter could not be configured either
  }
}

const tracer = trace.getTracer("trellis");
const SERVICE_KEY = createContextKey("trellis.service");

/**
 * Options for {@linkcode inSpan}.
 *
 * @example A consumer span continuing a message's trace
 * ```ts
 * import { inSpan, SpanKind, type SpanOptions } from "./spans.ts";
 * const options: SpanOptions = { kind: SpanKind.CONSUMER, parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" };
 * await inSpan("process orders.events", options, async () => {});
 * ```
 */
export interface SpanOptions {
  /** @default {SpanKind.INTERNAL} */
  kind?: SpanKind;
  /** @default {{}} */
  attributes?: Attributes;
  /**
   * A W3C `traceparent` to continue (a message's, a gRPC call's) instead of the active span; an invalid one starts a
   * new trace.
   * @default {undefined}
   */
  parent?: string;
  /** Spans this one is linked to, without being their child. @default {[]} */
  links?: Link[];
  /** The service the span (and those started inside it) belongs to. @default {the service in scope} */
  service?: string;
}

/**
 * Runs `fn` inside a new active span named `name` and ends it when `fn` settles: a rejection or throw is recorded as
 * an exception and sets the span's status to ERROR, then rethrown. The span carries {@linkcode SERVICE_ATTRIBUTE}
 * when a service is in scope. With tracing off, `fn` runs with `undefined` and nothing else happens.
 *
 * @example Time a step
 * ```ts
 * import { inSpan } from "./spans.ts";
 * const total = await inSpan("sum", {}, (span) => {
 *   span?.setAttribute("items", 3);
 *   return 1 + 2 + 3;
 * });
 * ```
 */
export function inSpan<T>(
  name: string,
  options: SpanOptions,
  fn: (span: Span | undefined) => T | Promise<T>,
): Promise<T> {
  if (!tracingEnabled) {
    try {
      return Promise.resolve(fn(undefined));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return traced(name, options, fn);
}

function traced<T>(name: string, options: SpanOptions, fn: (span: Span) => T | Promise<T>): Promise<T> {
  const active = otelContext.active();
  const service = options.service ?? active.getValue(SERVICE_KEY) as string | undefined;
  // A remote parent starts from the root: whatever ran the callback (a broker's delivery loop) is not the parent.
  let base = options.parent === undefined ? active : remoteParent(ROOT_CONTEXT, options.parent);
  if (service) base = base.setValue(SERVICE_KEY, service);
  const attributes = service ? { [SERVICE_ATTRIBUTE]: service, ...options.attributes } : options.attributes;
  return tracer.startActiveSpan(name, { kind: options.kind, attributes, links: options.links }, base, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      recordError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** `base` with its active span replaced by the remote one `traceparent` names (or none, when it is not valid). */
function remoteParent(base: OtelContext, traceparent: string): OtelContext {
  const parsed = parseTraceparent(traceparent);
  if (!parsed) return trace.deleteSpan(base);
  return trace.setSpanContext(base, {
    traceId: parsed.traceId,
    spanId: parsed.parentSpanId,
    traceFlags: parsed.sampled ? 1 : 0,
    isRemote: true,
  });
}

/**
 * Marks `span` as failed: records `err` as an exception event and sets status ERROR with its message. Does nothing
 * when `span` is undefined (tracing off).
 *
 * @example Fail a span without throwing
 * ```ts
 * import { inSpan, recordError } from "./spans.ts";
 * await inSpan("lookup", {}, (span) => recordError(span, new Error("not found")));
 * ```
 */
export function recordError(span: Span | undefined, err: unknown): void {
  if (!span) return;
  const error = err instanceof Error ? err : new Error(String(err));
  span.recordException(error);
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
}

/**
 * Runs `fn` with `service` in scope: spans started inside it by {@linkcode inSpan} carry it as
 * {@linkcode SERVICE_ATTRIBUTE}. The entry points of a service (its HTTP router, gRPC server, message subscriptions,
 * outbox relay) call it, so embedded mode tells six services apart in one process. With tracing off it calls `fn`.
 *
 * @example Attribute the spans of a job to the orders service
 * ```ts
 * import { inSpan, withService } from "./spans.ts";
 * await withService("orders", () => inSpan("sweep", {}, async () => {}));
 * ```
 */
export function withService<T>(service: string, fn: () => T): T {
  if (!tracingEnabled) return fn();
  return otelContext.with(otelContext.active().setValue(SERVICE_KEY, service), fn);
}

/**
 * The service in scope ({@linkcode withService}), or `undefined` (also with tracing off).
 *
 * @example Remember the subscribing service for later deliveries
 * ```ts
 * import { currentService, withService } from "./spans.ts";
 * withService("inventory", () => currentService()); // "inventory" with tracing on
 * ```
 */
export function currentService(): string | undefined {
  if (!tracingEnabled) return undefined;
  return otelContext.active().getValue(SERVICE_KEY) as string | undefined;
}

/**
 * The W3C `traceparent` naming the active span, to send downstream as its child's parent; `undefined` with tracing
 * off or when no span is active.
 *
 * @example Stamp the active span on outgoing headers
 * ```ts
 * import { activeTraceparent } from "./spans.ts";
 * const headers: Record<string, string> = {};
 * const traceparent = activeTraceparent();
 * if (traceparent) headers.traceparent = traceparent;
 * ```
 */
export function activeTraceparent(): string | undefined {
  if (!tracingEnabled) return undefined;
  const span = trace.getActiveSpan();
  if (!span) return undefined;
  const { traceId, spanId, traceFlags } = span.spanContext();
  if (!trace.isSpanContextValid(span.spanContext())) return undefined;
  return `00-${traceId}-${spanId}-${(traceFlags & 1) === 1 ? "01" : "00"}`;
}

/**
 * Names the active span (Deno's automatic `Deno.serve` span, inside a request) after a route, e.g. `POST /v1/orders`,
 * sets `http.route`, and attributes it to `service`. Does nothing with tracing off.
 *
 * @example Name a request's server span from inside its handler
 * ```ts
 * import { nameServerSpan } from "./spans.ts";
 * nameServerSpan("POST", "/v1/orders", "gateway");
 * ```
 */
export function nameServerSpan(method: string, route: string, service?: string): void {
  if (!tracingEnabled) return;
  const span = trace.getActiveSpan();
  if (!span) return;
  span.updateName(`${method} ${route}`);
  span.setAttribute("http.route", route);
  if (service) span.setAttribute(SERVICE_ATTRIBUTE, service);
}

/**
 * Runs `fn` outside any span, so spans it starts are roots: for background loops (an outbox relay) that must not
 * inherit whichever request happened to start them. With tracing off it calls `fn`.
 *
 * @example Start a polling loop outside the request that triggered it
 * ```ts
 * import { detached, inSpan } from "./spans.ts";
 * await detached(() => inSpan("poll", {}, async () => {}));
 * ```
 */
export function detached<T>(fn: () => T): T {
  if (!tracingEnabled) return fn();
  return otelContext.with(ROOT_CONTEXT, fn);
}
