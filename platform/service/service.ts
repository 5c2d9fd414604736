import { bodyLimit, chain, type Handler, json, type Middleware, pathnameOf, problemResponse } from "../http/mod.ts";
import { holdDeadlineTimer } from "../context/mod.ts";
import { createLogger, type Logger } from "../log/mod.ts";
import { Registry } from "prom-client";
import { loggerAccessLine, templateAccessLine } from "./access_line.ts";
import { fusedStack } from "./fused_stack.ts";
import { runtimeMetrics } from "./metrics.ts";
import { RedCounters } from "./red_counters.ts";

/**
 * A dependency probe: resolves when the dependency answers, throws (or times out) when it does not.
 *
 * @example Ready once the database answers
 * ```ts
 * import { type Check, Service } from "./service.ts";
 * const database = { ping: (_signal: AbortSignal) => Promise.resolve() };
 * const dbCheck: Check = (signal) => database.ping(signal);
 * new Service({ name: "orders" }).check("database", dbCheck);
 * ```
 */
export type Check = (signal: AbortSignal) => Promise<void>;

/**
 * One dependency's line in `/readyz`: whether its check passed, how long it took (whole milliseconds) and, when it
 * failed, why.
 *
 * @example The body of a `/readyz` answered while the database is down
 * ```ts
 * import type { CheckResult } from "./service.ts";
 * const checks: Record<string, CheckResult> = {
 *   database: { ok: false, error: "connection refused", ms: 12 },
 *   events: { ok: true, ms: 3 },
 * };
 * const body = { status: "not ready", service: "orders", checks };
 * ```
 */
export interface CheckResult {
  ok: boolean;
  ms: number;
  error?: string;
}

/**
 * Options for {@linkcode Service}.
 *
 * @example A service on a fixed port with a shorter drain
 * ```ts
 * import { Service, type ServiceOptions } from "./service.ts";
 * const options: ServiceOptions = { name: "orders", port: 8081, drainMs: 5_000, maxBodyBytes: 64 * 1024 };
 * const svc = new Service(options);
 * ```
 */
export interface ServiceOptions {
  /** Service name, used in logs and metrics. */
  name: string;
  /** HTTP port; 0 picks a free one. @default {0} */
  port?: number;
  /** @default {"127.0.0.1"} */
  hostname?: string;
  /** @default {createLogger(name)} */
  logger?: Logger;
  /** Extra middleware applied inside the standard stack (request context, tracing, security headers, recovery, access log, metrics, body limit). */
  middleware?: Middleware[];
  /** Budget for requests that carry no deadline. @default {10000} */
  defaultBudgetMs?: number;
  /** How long `stop()` waits for in-flight work before giving up on it. @default {10000} */
  drainMs?: number;
  /** How long one readiness check may take. @default {1000} */
  checkTimeoutMs?: number;
  /** How long a readiness result is reused. @default {1000} */
  checkCacheMs?: number;
  /** Milliseconds on a monotonic clock, by which `checkCacheMs` is judged (tests pass a fake). @default {performance.now} */
  now?: () => number;
  /** How long `start()` waits for every readiness check to pass before it gives up. @default {30000} */
  startTimeoutMs?: number;
  /** Largest request body accepted (413 beyond it). @default {1048576} */
  maxBodyBytes?: number;
}

type State = "created" | "starting" | "ready" | "draining" | "stopped";

/**
 * A service with a two-phase lifecycle. `start()` runs the start hooks (connect dependencies), serves HTTP (liveness
 * answers at once; readiness stays false), runs every readiness check and only then marks the service ready.
 * `stop()` marks it not ready, stops accepting and drains in-flight HTTP requests, runs stop hooks in reverse order
 * (consumers, servers, pools), each bounded by the drain deadline. Every service exposes `/healthz`, `/readyz` and
 * `/metrics`. Once ready, `/readyz` runs the checks again (at most once per `checkCacheMs`) and answers 200
 * `{"status":"ready","service":…,"checks":{…}}` or 503 `{"status":"not ready",…}` with the same `checks`, one
 * {@linkcode CheckResult} per dependency; so it turns 503 while a dependency is down and 200 again by itself.
 *
 * @example A minimal service
 * ```ts
 * import { Service } from "./service.ts";
 * const svc = new Service({ name: "hello", logger: undefined });
 * svc.handle(async () => new Response("hello"));
 * // await svc.start(); ... await svc.stop();
 * ```
 */
export class Service {
  readonly name: string;
  readonly logger: Logger;
  readonly registry: Registry;
  #options: ServiceOptions;
  #state: State = "created";
  #handler: Handler = () => Promise.resolve(problemResponse(404, "not-found", "Not found"));
  #startHooks: { name: string; fn: () => Promise<void> }[] = [];
  #stopHooks: { name: string; fn: (signal: AbortSignal) => Promise<void> }[] = [];
  #checks = new Map<string, Check>();
  #checkCache?: { at: number; results: Record<string, CheckResult> };
  #checkRound?: Promise<Record<string, CheckResult>>;
  #server?: Deno.HttpServer<Deno.NetAddr>;
  #stopping?: Promise<void>;
  #releaseDeadlineTimer?: () => void;
  #now: () => number;

  constructor(options: ServiceOptions) {
    this.name = options.name;
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
    this.logger = options.logger ?? createLogger(options.name);
    this.registry = new Registry();
    this.registry.setDefaultLabels({ service: options.name });
    runtimeMetrics(this.registry);
  }

  /** Sets the application handler (usually a `Router`'s). */
  handle(handler: Handler): this {
    this.#handler = handler;
    return this;
  }

  /** Registers work for phase one of `start()`, run in registration order. */
  onStart(name: string, fn: () => Promise<void>): this {
    this.#startHooks.push({ name, fn });
    return this;
  }

  /** Registers cleanup for `stop()`, run in reverse registration order after HTTP has drained. */
  onStop(name: string, fn: (signal: AbortSignal) => Promise<void>): this {
    this.#stopHooks.push({ name, fn });
    return this;
  }

  /**
   * Registers a readiness check, reported under `name` in `/readyz`: `{ ok, ms }`, with `error` when it failed. Checks
   * run concurrently, each bounded by `checkTimeoutMs`, and a round's results are reused for `checkCacheMs`.
   */
  check(name: string, fn: Check): this {
    this.#checks.set(name, fn);
    return this;
  }

  /** Current lifecycle state. */
  get state(): State {
    return this.#state;
  }

  /** The bound HTTP address, once started. */
  get url(): string {
    if (!this.#server) throw new TypeError(`Cannot read url of service "${this.name}": it is not started`);
    return `http://${this.#server.addr.hostname}:${this.#server.addr.port}`;
  }

  /** The bound HTTP port, once started. */
  get port(): number {
    if (!this.#server) throw new TypeError(`Cannot read port of service "${this.name}": it is not started`);
    return this.#server.addr.port;
  }

  /** Phase one: start hooks; then serve; phase two: readiness checks pass, then ready. */
  async start(): Promise<void> {
    if (this.#state !== "created") {
      throw new TypeError(`Cannot start service "${this.name}": current state is ${this.#state}`);
    }
    this.#state = "starting";
    const started = performance.now();
    try {
      for (const hook of this.#startHooks) {
        if (this.#state !== "starting") throw new Error(`service "${this.name}" was stopped while starting`);
        await hook.fn();
      }
      this.#serve();
      await this.#waitForChecks();
    } catch (err) {
      this.logger.error("start failed", { err });
      await this.stop();
      throw err;
    }
    this.#state = "ready";
    this.logger.info("ready", { url: this.url, ms: Math.round(performance.now() - started) });
  }

  #serve(): void {
    // The default stack (request context, tracing, security headers, recovery, access log, RED metrics) fused into
    // one wrapper: the same behaviour as chaining those middleware, at about half the CPU per request.
    const app = fusedStack(
      {
        logger: this.logger,
        // The default logger's access line comes from a template; a logger of the caller's own gets the fields.
        accessLine: this.#options.logger ? loggerAccessLine(this.logger) : templateAccessLine(this.name),
        red: new RedCounters(this.registry),
        defaultBudgetMs: this.#options.defaultBudgetMs,
      },
      chain(
        bodyLimit({ maxBytes: this.#options.maxBodyBytes ?? 1 << 20 }),
        ...(this.#options.middleware ?? []),
      )((req) => this.#handler(req)),
    );
    const builtin = (req: Request): Promise<Response> | undefined => {
      const path = pathnameOf(req);
      if (path === "/healthz") return Promise.resolve(json({ status: "ok", service: this.name }));
      if (path === "/readyz") return this.#readyz();
      if (path === "/metrics") {
        return this.registry.metrics().then((body) =>
          new Response(body, { headers: { "content-type": this.registry.contentType } })
        );
      }
      return undefined;
    };
    this.#releaseDeadlineTimer = holdDeadlineTimer();
    this.#server = Deno.serve({
      hostname: this.#options.hostname ?? "127.0.0.1",
      port: this.#options.port ?? 0,
      onListen: () => {},
      onError: (err) => {
        this.logger.error("unhandled", { err });
        return problemResponse(500, "internal", "Internal server error");
      },
    }, (req) => {
      if (this.#state === "draining" || this.#state === "stopped") {
        return problemResponse(503, "unavailable", "Service is shutting down", { headers: { connection: "close" } });
      }
      return builtin(req) ?? app(req);
    });
  }

  async #readyz(): Promise<Response> {
    if (this.#state !== "ready") {
      // While start() waits on dependencies, show what its last round of checks found.
      const checks = this.#state === "starting" ? this.#checkCache?.results : undefined;
      return json({ status: "not ready", service: this.name, state: this.#state, checks }, 503);
    }
    const checks = await this.#runChecks();
    const ok = Object.values(checks).every((c) => c.ok);
    return json({ status: ok ? "ready" : "not ready", service: this.name, checks }, ok ? 200 : 503);
  }

  /** The latest round of checks: the cached one while fresh, else a new one, shared by concurrent callers. */
  #runChecks(): Promise<Record<string, CheckResult>> {
    const cacheMs = this.#options.checkCacheMs ?? 1000;
    if (this.#checkCache && this.#now() - this.#checkCache.at < cacheMs) {
      return Promise.resolve(this.#checkCache.results);
    }
    this.#checkRound ??= this.#checkRoundNow().finally(() => this.#checkRound = undefined);
    return this.#checkRound;
  }

  async #checkRoundNow(): Promise<Record<string, CheckResult>> {
    const timeoutMs = this.#options.checkTimeoutMs ?? 1000;
    const entries = await Promise.all([...this.#checks].map(async ([name, fn]): Promise<[string, CheckResult]> => {
      const signal = AbortSignal.timeout(timeoutMs);
      const started = performance.now();
      let onAbort: (() => void) | undefined;
      try {
        // A check that ignores its signal still counts as failed once the signal fires.
        await Promise.race([
          fn(signal),
          new Promise((_, reject) => {
            onAbort = () => reject(signal.reason);
            signal.addEventListener("abort", onAbort, { once: true });
          }),
        ]);
        return [name, { ok: true, ms: Math.round(performance.now() - started) }];
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        return [name, { ok: false, error, ms: Math.round(performance.now() - started) }];
      } finally {
        if (onAbort) signal.removeEventListener("abort", onAbort);
      }
    }));
    const results = Object.fromEntries(entries);
    this.#checkCache = { at: this.#now(), results };
    return results;
  }

  async #waitForChecks(): Promise<void> {
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 30_000);
    while (true) {
      if (this.#state !== "starting") {
        throw new Error(`service "${this.name}" was stopped before its dependencies were ready`);
      }
      this.#checkCache = undefined;
      const failures = failuresOf(await this.#runChecks());
      if (Object.keys(failures).length === 0) return;
      if (Date.now() > deadline) {
        throw new Error(`service "${this.name}" dependencies not ready: ${JSON.stringify(failures)}`);
      }
      this.logger.info("waiting for dependencies", { failing: failures });
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Graceful stop within the drain deadline; idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const drainMs = this.#options.drainMs ?? 10_000;
    this.#state = "draining";
    const signal = AbortSignal.timeout(drainMs);
    if (this.#server) {
      try {
        const timedOut = await withDeadline(this.#server.shutdown(), signal);
        if (timedOut) this.logger.warn("drain deadline passed with requests in flight");
      } catch (err) {
        this.logger.error("http shutdown failed", { err });
      }
    }
    for (const hook of [...this.#stopHooks].reverse()) {
      try {
        const timedOut = await withDeadline(hook.fn(signal), signal);
        if (timedOut) this.logger.warn("stop hook exceeded the drain deadline", { hook: hook.name });
      } catch (err) {
        this.logger.error("stop hook failed", { hook: hook.name, err });
      }
    }
    this.#releaseDeadlineTimer?.();
    this.#state = "stopped";
    this.logger.info("stopped");
  }
}

/** The error of each failed check, by name. */
function failuresOf(results: Record<string, CheckResult>): Record<string, string> {
  const failures: Record<string, string> = {};
  for (const [name, r] of Object.entries(results)) if (!r.ok) failures[name] = r.error ?? "failed";
  return failures;
}

/** Resolves true when `signal` fired before `p` settled, false when `p` resolved first; rejects when `p` rejected first. */
function withDeadline(p: Promise<unknown>, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) {
    // Nobody waits for `p` any more; its late failure must not become an unhandled rejection.
    p.catch(() => {});
    return Promise.resolve(true);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(true);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(() => resolve(false), reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Stops `stoppables` on the first SIGTERM or SIGINT, then exits 0 (1 if stopping threw).
 *
 * @example
 * ```ts
 * import { Service, stopOnSignals } from "./service.ts";
 * const svc = new Service({ name: "demo" });
 * // await svc.start(); stopOnSignals([svc]);
 * ```
 */
export function stopOnSignals(stoppables: { stop(): Promise<void> }[], onStopped?: () => Promise<void>): void {
  let stopping = false;
  const handler = async () => {
    if (stopping) return;
    stopping = true;
    let code = 0;
    try {
      await Promise.all(stoppables.map((s) => s.stop()));
      await onStopped?.();
    } catch (err) {
      console.error(err);
      code = 1;
    }
    Deno.exit(code);
  };
  Deno.addSignalListener("SIGTERM", handler);
  Deno.addSignalListener("SIGINT", handler);
}
