import { pathnameOf } from "./url.ts";
import { contextFromHeaders, currentContext, runWithContext } from "../context/mod.ts";
import type { Logger } from "../log/mod.ts";
import { editHeaders } from "./_headers.ts";
import { knownBodyBytes } from "./_bytes.ts";
import { type Handler, invoke, type Middleware } from "./handler.ts";
import { errorResponse, HttpError } from "./problem.ts";

/**
 * Options for {@linkcode requestContext}.
 *
 * @example Give requests without a deadline three seconds
 * ```ts
 * import { requestContext, type RequestContextOptions } from "./middleware.ts";
 * const options: RequestContextOptions = { defaultBudgetMs: 3_000 };
 * const middleware = requestContext(options);
 * ```
 */
export interface RequestContextOptions {
  /** Budget for requests that carry no deadline header. @default {10000} */
  defaultBudgetMs?: number;
}

/**
 * Opens the request context: adopts a valid incoming `X-Request-Id` (else makes one) and echoes it, turns the
 * incoming deadline (or the default budget) into the context's `AbortSignal`, and answers 504 problem+json when the
 * deadline passes before the handler does.
 *
 * @example
 * ```ts
 * import { chain } from "./handler.ts";
 * import { requestContext } from "./middleware.ts";
 * const h = chain(requestContext({ defaultBudgetMs: 2000 }))(async () => new Response("ok"));
 * ```
 */
export function requestContext(options: RequestContextOptions = {}): Middleware {
  const defaultBudgetMs = options.defaultBudgetMs ?? 10_000;
  return (next) =>
    function requestContext(req) {
      const answered = Promise.withResolvers<Response>();
      // The deadline passed before the handler answered: 504, built inside the context so it carries the request id.
      const timedOut = () => answered.resolve(runWithContext(ctx, () => errorResponse(deadlineExceeded())));
      const { ctx, dispose } = contextFromHeaders(req.headers, {
        defaultBudgetMs,
        signal: () => req.signal,
        onEnd: timedOut,
      });
      runWithContext(ctx, () => invoke(next, req)).then(answered.resolve, (err) => {
        if (ctx.deadline !== undefined && Date.now() >= ctx.deadline && !(err instanceof HttpError)) timedOut();
        else answered.reject(err);
      });
      return answered.promise.then((res) => {
        dispose();
        return editHeaders(res, (h) => h.set("x-request-id", ctx.requestId));
      }, (err) => {
        dispose();
        throw err;
      });
    };
}

/**
 * Turns anything a handler throws into problem+json: `HttpError`s keep their status; other errors become a 500 with
 * no internals, and their stack goes to the log.
 *
 * @example
 * ```ts
 * import { createLogger } from "../log/mod.ts";
 * import { recovery } from "./middleware.ts";
 * const mw = recovery(createLogger("demo", { write: () => {} }));
 * ```
 */
export function recovery(log: Logger): Middleware {
  return (next) =>
    function recovery(req) {
      return invoke(next, req).catch((err) => {
        // A downstream timer can fire a moment before the context's own (coarse) deadline timer does: a failure at or
        // past the deadline is the deadline's, whatever the handler threw.
        const ctx = currentContext();
        if (!(err instanceof HttpError) && ctx?.deadline !== undefined && Date.now() >= ctx.deadline) {
          return errorResponse(deadlineExceeded());
        }
        if (!(err instanceof HttpError)) log.error("handler failed", { err, path: pathnameOf(req) });
        return errorResponse(err);
      });
    };
}

function deadlineExceeded(): HttpError {
  return new HttpError(504, "deadline-exceeded", "Deadline exceeded", {
    detail: "the request did not complete within its deadline",
  });
}

/**
 * One log line per request: method, route template, status, duration in ms, body size in bytes and, from the request
 * context as on every log line, request id and trace id. The size is known without reading the body for bodies made by
 * `json()` and the problem helpers, null bodies and any response declaring `Content-Length`; a stream of unknown
 * length is logged without `bytes`.
 *
 * @example
 * ```ts
 * import { createLogger } from "../log/mod.ts";
 * import { accessLog } from "./middleware.ts";
 * const mw = accessLog(createLogger("demo", { write: () => {} }));
 * ```
 */
export function accessLog(log: Logger): Middleware {
  return (next) =>
    function accessLog(req) {
      const start = performance.now();
      const line = (status: number, bytes: number | undefined) =>
        log.info("request", {
          method: req.method,
          route: currentContext()?.route ?? "unmatched",
          status,
          ms: Math.round((performance.now() - start) * 100) / 100,
          bytes,
        });
      return invoke(next, req).then((res) => {
        line(res.status, knownBodyBytes(res));
        return res;
      }, (err) => {
        // recovery() answers a problem body whose size is not known here.
        line(err instanceof HttpError ? err.status : 500, undefined);
        throw err;
      });
    };
}

/**
 * Runs `next(req)` and then reports the status the client will get to `done`, also when the handler throws: a
 * thrown `HttpError`'s status, else 500, as `recovery()` will answer. For middleware that observes outcomes (logs,
 * metrics) from inside `recovery()`.
 *
 * @example
 * ```ts
 * import { withOutcome } from "./middleware.ts";
 * const res = await withOutcome(async () => new Response("ok"), new Request("http://x/"), (s) => console.log(s));
 * ```
 */
export function withOutcome(
  next: Handler,
  req: Request,
  done: (status: number) => void,
): Promise<Response> {
  return invoke(next, req).then((res) => {
    done(res.status);
    return res;
  }, (err) => {
    done(err instanceof HttpError ? err.status : 500);
    throw err;
  });
}
