import { trace } from "@opentelemetry/api";
import { currentContext } from "../context/mod.ts";
import { redactFields, redactText } from "./redact.ts";

/**
 * Severity, lowest first.
 *
 * @example Only warnings and errors
 * ```ts
 * import { createLogger, type Level } from "./logger.ts";
 * const level: Level = "warn";
 * const log = createLogger("orders", { level, write: () => {} });
 * ```
 */
export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * Structured JSON logger; every line carries the service name and, inside a context, the request id, and inside a
 * span its `traceId` and `spanId`. Secrets never reach a line: values of fields named like one (`authorization`,
 * `password`, `token`, `secret`, `apiKey`, ...; nested objects too), JWTs, bearer credentials and every value
 * registered with `registerSecret` are replaced by `[REDACTED]`.
 *
 * @example A logger for one order
 * ```ts
 * import { createLogger, type Logger } from "./logger.ts";
 * const lines: string[] = [];
 * const base = createLogger("orders", { level: "info", write: (line) => lines.push(line) });
 * const log: Logger = base.with({ orderId: "o-1" });
 * log.info("order created");
 * JSON.parse(lines[0]).orderId; // "o-1"
 * ```
 */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines also carry `fields`. */
  with(fields: Record<string, unknown>): Logger;
}

/**
 * Options for {@linkcode createLogger}.
 *
 * @example Debug lines into an array, for a test
 * ```ts
 * import { createLogger, type LoggerOptions } from "./logger.ts";
 * const lines: string[] = [];
 * const options: LoggerOptions = { level: "debug", write: (line) => lines.push(line) };
 * createLogger("orders", options).debug("cache miss", { key: "o-1" });
 * lines.length; // 1
 * ```
 */
export interface LoggerOptions {
  /** Lowest level written. @default {"info"} (or `LOG_LEVEL`) */
  level?: Level;
  /**
   * Where lines go. The default, {@linkcode bufferedStdout}, batches lines into one write per event-loop turn and
   * writes `error` lines at once; pass {@linkcode writeStdout} for one unbuffered write per line.
   * @default {bufferedStdout}
   */
  write?: (line: string, level: Level) => void;
}

/**
 * Creates a JSON-lines logger for a service.
 *
 * @example
 * ```ts
 * import { createLogger } from "./logger.ts";
 * const log = createLogger("orders", { write: () => {} });
 * log.info("order created", { orderId: "o-1" });
 * ```
 */
export function createLogger(service: string, options: LoggerOptions = {}): Logger {
  const envLevel = Deno.env.get("LOG_LEVEL") as Level | undefined;
  const min = ORDER[options.level ?? (envLevel && envLevel in ORDER ? envLevel : "info")];
  const write = options.write ?? bufferedStdout;
  const make = (base: Record<string, unknown>): Logger => {
    const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
      if (ORDER[level] < min) return;
      const ctx = currentContext();
      const line: Record<string, unknown> = { ts: isoNow(), level, service, msg };
      for (const k in base) line[k] = base[k];
      if (ctx) line.requestId = ctx.requestId;
      addSpan(line, ctx?.traceparent, ctx?.traceId);
      // A loop rather than spreads: this runs for every access line.
      if (fields) {
        const safe = redactFields(fields);
        for (const k in safe) line[k] = serialisableValue(safe[k]);
      }
      write(redactText(JSON.stringify(line)), level);
    };
    return {
      debug: (m, f) => emit("debug", m, f),
      info: (m, f) => emit("info", m, f),
      warn: (m, f) => emit("warn", m, f),
      error: (m, f) => emit("error", m, f),
      with: (fields) => make({ ...base, ...serialisable(redactFields(fields)) }),
    };
  };
  return make({});
}

/**
 * Adds the current span's `traceId` and `spanId`: an OpenTelemetry span when one is active (Deno's built-in tracing, or
 * spans made with `@opentelemetry/api`), else this hop's span named by the context's `traceparent`
 * (`00-<trace id>-<span id>-<flags>`), else the bare trace id.
 */
function addSpan(line: Record<string, unknown>, traceparent: string | undefined, traceId: string | undefined): void {
  const span = trace.getActiveSpan()?.spanContext();
  if (span && span.traceId !== INVALID_TRACE_ID) {
    line.traceId = span.traceId;
    line.spanId = span.spanId;
  } else if (traceparent !== undefined && traceparent.length >= 55 && traceparent[2] === "-") {
    line.traceId = traceparent.slice(3, 35);
    line.spanId = traceparent.slice(36, 52);
  } else if (traceId !== undefined) {
    line.traceId = traceId;
  }
}

const INVALID_TRACE_ID = "00000000000000000000000000000000";

/** `JSON.stringify` renders an `Error` as `{}`; lift out what a reader of the log needs. */
function serialisable(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in fields) out[k] = serialisableValue(fields[k]);
  return out;
}

function serialisableValue(v: unknown): unknown {
  return v instanceof Error ? errorFields(v) : v;
}

function errorFields(err: Error): Record<string, unknown> {
  return { name: err.name, message: err.message, stack: err.stack };
}

const encoder = new TextEncoder();

let lastMs = 0;
let lastIso = "";
/** `new Date().toISOString()`, formatted once per millisecond: under load many lines share one. */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/** Flush once this much text is waiting, whatever the event loop does. */
const FLUSH_AT_CHARS = 64 * 1024;
let pending: string[] = [];
let pendingChars = 0;
let flushTimer: ReturnType<typeof setTimeout> | undefined;
let exitHooked = false;

/**
 * Writes one line to standard output through a buffer: lines written in the same event-loop turn leave in one
 * `write` when the turn ends (or once 64 KiB are waiting), `error` lines leave at once together with everything
 * before them, and whatever is waiting is written when the process exits (`Deno.exit`, the end of the program, an
 * uncaught exception or rejection). Only a kill (SIGKILL) can lose lines: at most one turn's worth.
 *
 * Why: one write system call per access line was the largest single cost of a request through the HTTP stack (a
 * third of the CPU for a small JSON route); one write per turn carries dozens of lines under load.
 *
 * @example
 * ```ts
 * import { bufferedStdout, flushStdout } from "./logger.ts";
 * bufferedStdout('{"msg":"hello"}', "info");
 * flushStdout();
 * ```
 */
export function bufferedStdout(line: string, level: Level = "info"): void {
  pending.push(line);
  pendingChars += line.length + 1;
  if (level === "error" || pendingChars >= FLUSH_AT_CHARS) {
    flushStdout();
    return;
  }
  if (!exitHooked) {
    exitHooked = true;
    for (const event of ["unload", "error", "unhandledrejection"]) globalThis.addEventListener(event, flushStdout);
  }
  flushTimer ??= setTimeout(flushStdout, 0);
}

/**
 * Writes the lines {@linkcode bufferedStdout} holds, synchronously; a no-op when none wait.
 *
 * @example Before a hard exit
 * ```ts
 * import { flushStdout } from "./logger.ts";
 * flushStdout();
 * ```
 */
export function flushStdout(): void {
  if (flushTimer !== undefined) {
    clearTimeout(flushTimer);
    flushTimer = undefined;
  }
  if (pending.length === 0) return;
  const text = pending.join("\n");
  pending = [];
  pendingChars = 0;
  writeStdout(text);
}

/**
 * Writes one line to standard output, synchronously and whole. Measured here: about 1.3 µs a line against about
 * 6 µs for `console.log`, which formats its arguments first.
 *
 * @example
 * ```ts
 * import { writeStdout } from "./logger.ts";
 * writeStdout('{"msg":"hello"}');
 * ```
 */
export function writeStdout(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let offset = 0;
  while (offset < bytes.length) offset += Deno.stdout.writeSync(bytes.subarray(offset));
}
