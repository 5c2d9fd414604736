import { bufferedStdout, type Level, type Logger } from "../log/mod.ts";

/**
 * Writes one access line: the fields of `accessLog()`'s line, plus the request id, trace id and span id (this hop's,
 * as the context's `traceparent` names it) of the context.
 */
export type AccessLineWriter = (
  requestId: string,
  traceId: string | undefined,
  spanId: string | undefined,
  method: string,
  route: string,
  status: number,
  ms: number,
  bytes: number | undefined,
) => void;

const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SAFE_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);
/** Characters a request id or trace id made by the context code may hold: no escaping needed inside quotes. */
const PLAIN = /^[A-Za-z0-9._:-]*$/;

/**
 * The access line of a service that logs through the default logger (`createLogger(service)`: JSON lines to
 * buffered stdout at `LOG_LEVEL`), written from a template instead of building an object and `JSON.stringify`-ing
 * it: byte for byte the line `logger.info("request", {method, route, status, ms, bytes})` writes inside the request
 * context. Strings that may need escaping (the service name, a route template, an unusual method) are escaped
 * once and cached. A service given its own logger gets {@linkcode loggerAccessLine} instead. `options` are
 * `createLogger()`'s: the level (default `LOG_LEVEL`, else info) and the sink (default buffered stdout). Returns
 * `undefined` when the level leaves info lines out.
 */
export function templateAccessLine(
  service: string,
  options: { level?: Level; write?: (line: string, level: Level) => void } = {},
): AccessLineWriter | undefined {
  const write = options.write ?? bufferedStdout;
  const envLevel = Deno.env.get("LOG_LEVEL") as Level | undefined;
  const min = ORDER[options.level ?? (envLevel && envLevel in ORDER ? envLevel : "info")];
  const head = `","level":"info","service":${JSON.stringify(service)},"msg":"request","requestId":`;
  const routes = new Map<string, string>();
  let lastMs = 0;
  let lastIso = "";
  const writer: AccessLineWriter = (requestId, traceId, spanId, method, route, status, ms, bytes) => {
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastIso = new Date(now).toISOString();
    }
    let r = routes.get(route);
    if (r === undefined) {
      r = JSON.stringify(route);
      // Templates are few; anything else (a client-chosen string) is escaped each time rather than cached.
      if (routes.size < 1000) routes.set(route, r);
    }
    const rid = PLAIN.test(requestId) ? `"${requestId}"` : JSON.stringify(requestId);
    const trace = traceId === undefined
      ? ""
      : `,"traceId":${PLAIN.test(traceId) ? `"${traceId}"` : JSON.stringify(traceId)}${
        spanId === undefined ? "" : `,"spanId":${PLAIN.test(spanId) ? `"${spanId}"` : JSON.stringify(spanId)}`
      }`;
    const m = SAFE_METHODS.has(method) ? `"${method}"` : JSON.stringify(method);
    write(
      `{"ts":"${lastIso}${head}${rid}${trace},"method":${m},"route":${r},"status":${status},"ms":${ms}${
        bytes === undefined ? "" : `,"bytes":${bytes}`
      }}`,
      "info",
    );
  };
  return ORDER.info < min ? undefined : writer;
}

/** The access line through any {@linkcode Logger}, as `accessLog()` writes it (call inside the request context). */
export function loggerAccessLine(logger: Logger): AccessLineWriter {
  return (_requestId, _traceId, _spanId, method, route, status, ms, bytes) =>
    logger.info("request", { method, route, status, ms, bytes });
}
