import { pathnameOf } from "../http/_url.ts";
import { chain, type Handler, type Middleware } from "../http/handler.ts";
import { json } from "../http/json.ts";
import { accessLog, recovery, requestContext } from "../http/middleware.ts";
import { bodyLimit } from "../http/body_limit.ts";
import { securityHeaders } from "../http/security_headers.ts";
import { tracing } from "../http/tracing.ts";
import { problemResponse } from "../http/problem.ts";
import { holdDeadlineTimer } from "../context/context.ts";
import { createLogger, type Logger } from "../log/logger.ts";
import { Registry } from "prom-client";
import { redMetrics } from "./metrics.ts";

/** A dependency probe: resolves when the dependency answers, throws (or times out) when it does not. */
export type Check = (signal: AbortSignal) => Promise<void>;

/** Options for {@linkcode Service}. */
export interface ServiceOptions {
  /** Service name, used in logs and metrics. */
  name: string;
  /** HTTP port; 0 picks a free one. @default {0} */
  port?: number;
  /** @default {"127.0.0.1"} */
  hostname?: string;
  /** @default {createLogger(name)} */
  log?: Logger;
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
 * `/metrics`.
 *
 * @example A minimal service
 * ```ts
 * import { Service } from "./service.ts";
 * const svc = new Service({ name: "hello", log: undefined });
 * svc.handle(async () => new Response("hello"));
 * // await svc.start(); ... await svc.stop();
 * ```
 */
export class Service {
  readonly name: string;
  readonly log: Logger;
  readonly registry: Registry;
  #options: ServiceOptions;
  #state: State = "created";
  #handler: Handler = () => Promise.resolve(problemResponse(404, "not-found", "Not found"));
  #startHooks: { name: string; fn: () => Promise<void> }[] = [];
  #stopHooks: { name: string; fn: (signal: AbortSignal) => Promise<void> }[] = [];
  #checks = new Map<string, Check>();
  #checkCache?: { at: number; failures: Record<string, string> };
  #server?: Deno.HttpServer<Deno.NetAddr>;
  #stopping?: Promise<void>;
  #releaseDeadlineTimer?: () => void;

  constructor(options: ServiceOptions) {
    this.name = options.name;
    this.#options = options;
    this.log = options.log ?? createLogger(options.name);
    this.registry = new Registry();
    this.registry.setDefaultLabels({ service: options.name });
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

  /** Registers a readiness check, named in `/readyz` when it fails. */
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
      this.log.error("start failed", { err });
      await this.stop();
      throw err;
    }
    this.#state = "ready";
    this.log.info("ready", { url: this.url, ms: Math.round(performance.now() - started) });
  }

  #serve(): void {
    // Recovery runs inside the request context so a 500 carries the request id, in its body, header and log line.
    const app = chain(
      requestContext({ defaultBudgetMs: this.#options.defaultBudgetMs }),
      tracing(),
      securityHeaders(),
      recovery(this.log),
      accessLog(this.log),
      redMetrics(this.registry),
      bodyLimit({ maxBytes: this.#options.maxBodyBytes ?? 1 << 20 }),
      ...(this.#options.middleware ?? []),
    )((req) => this.#handler(req));
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
        this.log.error("unhandled", { err });
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
      // While start() waits on dependencies, name the ones its last round of checks found failing.
      const failing = this.#state === "starting" ? this.#checkCache?.failures : undefined;
      return json({ status: "not ready", service: this.name, state: this.#state, failing }, 503);
    }
    const failures = await this.#runChecks();
    if (Object.keys(failures).length > 0) {
      return json({ status: "not ready", service: this.name, failing: failures }, 503);
    }
    return json({ status: "ready", service: this.name });
  }

  async #runChecks(): Promise<Record<string, string>> {
    const cacheMs = this.#options.checkCacheMs ?? 1000;
    if (this.#checkCache && performance.now() - this.#checkCache.at < cacheMs) return this.#checkCache.failures;
    const timeoutMs = this.#options.checkTimeoutMs ?? 1000;
    const failures: Record<string, string> = {};
    await Promise.all([...this.#checks].map(async ([name, fn]) => {
      const signal = AbortSignal.timeout(timeoutMs);
      try {
        await Promise.race([
          fn(signal),
          new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true })),
        ]);
      } catch (err) {
        failures[name] = err instanceof Error ? err.message : String(err);
      }
    }));
    this.#checkCache = { at: performance.now(), failures };
    return failures;
  }

  async #waitForChecks(): Promise<void> {
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 30_000);
    while (true) {
      if (this.#state !== "starting") {
        throw new Error(`service "${this.name}" was stopped before its dependencies were ready`);
      }
      this.#checkCache = undefined;
      const failures = await this.#runChecks();
      if (Object.keys(failures).length === 0) return;
      if (Date.now() > deadline) {
        throw new Error(`service "${this.name}" dependencies not ready: ${JSON.stringify(failures)}`);
      }
      this.log.info("waiting for dependencies", { failing: failures });
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
        if (timedOut) this.log.warn("drain deadline passed with requests in flight");
      } catch (err) {
        this.log.error("http shutdown failed", { err });
      }
    }
    for (const hook of [...this.#stopHooks].reverse()) {
      try {
        const timedOut = await withDeadline(hook.fn(signal), signal);
        if (timedOut) this.log.warn("stop hook exceeded the drain deadline", { hook: hook.name });
      } catch (err) {
        this.log.error("stop hook failed", { hook: hook.name, err });
      }
    }
    this.#releaseDeadlineTimer?.();
    this.#state = "stopped";
    this.log.info("stopped");
  }
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
