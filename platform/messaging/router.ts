import type { RetryOptions } from "../async/mod.ts";
import { withService } from "../telemetry/mod.ts";
import { type Context, currentContext, newRequestId, runWithContext } from "../context/mod.ts";
import { createLogger, type Logger } from "../log/mod.ts";
import type { Service } from "../service/mod.ts";
import { checkBus } from "./check_bus.ts";
import type { ConsumerLag, MessageHandler, Publisher, PubSub, SubscribeOptions, Subscription } from "./message.ts";
import { chainHandlers, deadLetter, type HandlerMiddleware, retry, timeout } from "./middleware/mod.ts";
import { consumerLagGauge, consumerMetrics, countPublishes } from "./metrics.ts";
import type { Registry } from "prom-client";

/**
 * A bus, or a getter that connects it on first use (as `Infra.events()` does).
 *
 * @example Connect the bus only when the router starts
 * ```ts
 * import { createMemoryBroker } from "./adapters/memory.ts";
 * import type { BusSource } from "./router.ts";
 * const lazy: BusSource = () => Promise.resolve(createMemoryBroker());
 * ```
 */
export type BusSource = PubSub | (() => Promise<PubSub>);

/**
 * Where and when a {@linkcode MessageRouter} dead-letters a message: the `deadLetter` middleware's options, with the
 * publisher defaulting to the subscription's own bus.
 *
 * @example Park a message on `<topic>.poison` after its third failed delivery
 * ```ts
 * import type { DeadLetterPolicy } from "./router.ts";
 * const policy: DeadLetterPolicy = { maxAttempts: 3, topic: (source) => `${source}.poison` };
 * ```
 */
export interface DeadLetterPolicy {
  /** The delivery (`msg.attempt`) whose failure dead-letters the message. @default {5} */
  maxAttempts?: number;
  /** The dead-letter topic of a source topic. @default {(source) => `${source}.dlq`} */
  topic?: (source: string) => string;
  /** Where dead letters are published. @default {the subscription's bus} */
  publisher?: Publisher;
}

/**
 * How a {@linkcode MessageRouter} guards handlers: set on the router for every subscription, or on one subscription
 * (which wins).
 *
 * @example Give slow payment calls more time and fewer in-place retries
 * ```ts
 * import type { GuardOptions } from "./router.ts";
 * const slow: GuardOptions = { timeoutMs: 8_000, retry: { maxAttempts: 2 } };
 * ```
 */
export interface GuardOptions {
  /**
   * Longest one handler call may run; its context's signal aborts then and the call counts as failed. Below the
   * Kafka consumer's session timeout (10 s), so a stuck handler cannot get its consumer evicted. @default {5000}
   */
  timeoutMs?: number;
  /**
   * In-place calls per delivery, and the backoff between them, before the failure goes back to the broker
   * (redelivery, or on an at-most-once bus the log): brief faults are absorbed in place.
   * @default {{ maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 2000 }}
   */
  retry?: RetryOptions;
  /**
   * Dead-lettering of a message that keeps failing, on buses that redeliver (`features.redelivery`); `false` turns it
   * off. A bus without redelivery never dead-letters: a failure there is logged and the message dropped.
   * @default {{ maxAttempts: 5 }}
   */
  deadLetter?: DeadLetterPolicy | false;
}

/**
 * Options for {@linkcode MessageRouter}.
 *
 * @example A router on the events bus with a shared concurrency limit
 * ```ts
 * import { createMemoryBroker } from "./adapters/memory.ts";
 * import { concurrencyLimit } from "./middleware/mod.ts";
 * import type { RouterOptions } from "./router.ts";
 * const bus = createMemoryBroker();
 * const options: RouterOptions = { bus, timeoutMs: 2_000, middleware: [concurrencyLimit({ max: 8 })] };
 * await bus.close();
 * ```
 */
export interface RouterOptions extends GuardOptions {
  /** The bus subscriptions use unless they name their own. @default {none: each subscription names its bus} */
  bus?: BusSource;
  /** Where the router reports drains and refused messages. @default {createLogger("messaging")} */
  logger?: Logger;
  /** Middleware for every subscription, outermost first, inside the guards (so once per handler call). @default {[]} */
  middleware?: HandlerMiddleware[];
  /** How long `close()` waits for handlers in flight before it closes the subscriptions anyway. @default {10000} */
  drainMs?: number;
  /**
   * Where the router reports its consumers (`messaging_*`, see `messagingMetrics`); {@linkcode MessageRouter.attach}
   * sets the service's. @default {undefined: no metrics}
   */
  registry?: Registry;
}

/**
 * One subscription of a {@linkcode MessageRouter}: the adapter's subscribe options, its guards and its own
 * middleware.
 *
 * @example A durable group with four handlers at once and a middleware of its own
 * ```ts
 * import type { RouteOptions } from "./router.ts";
 * const route: RouteOptions = {
 *   group: "inventory",
 *   concurrency: 4,
 *   middleware: [(next) => async (msg) => await next(msg)],
 * };
 * ```
 */
export interface RouteOptions extends SubscribeOptions, GuardOptions {
  /** The bus to consume from. @default {the router's `bus`} */
  bus?: BusSource;
  /** Middleware of this subscription, inside the router's (outermost first). @default {[]} */
  middleware?: HandlerMiddleware[];
}

interface Route {
  topic: string;
  handler: MessageHandler;
  options: RouteOptions;
  bus: () => Promise<PubSub>;
  /** The guards inside the dead-letter middleware, built (and so validated) when the route is declared. */
  inner: HandlerMiddleware[];
  deadLetter: DeadLetterPolicy | false;
}

/**
 * Where a {@linkcode MessageRouter} is in its lifecycle: `draining` from `close()` until its subscriptions are closed.
 *
 * @example Report the router on a debug endpoint
 * ```ts
 * import type { RouterState } from "./router.ts";
 * const consuming = (state: RouterState) => state === "starting" || state === "running";
 * ```
 */
export type RouterState = "created" | "starting" | "running" | "draining" | "closed";

/**
 * Owns a service's consumers, so adapters stay thin and handlers stay plain (as Watermill's router): it subscribes
 * each declared handler, guards every call, counts what is in flight, and shuts down in order.
 *
 * Every handler is wrapped, outermost first, in: `deadLetter` (only where the bus has `features.redelivery`: after
 * `deadLetter.maxAttempts` deliveries, or at once for an error with `retryable: false`, the message goes to
 * `<topic>.dlq` with the headers the dead-letter tools read), `retry` (in-place calls with jittered backoff),
 * `timeout` (an aborting deadline per call), then the router's `middleware`, then the subscription's. So a
 * middleware such as the outbox's `inbox` runs once per call, with a fresh transaction bounded by the timeout.
 *
 * Lifecycle: `start()` subscribes every route (closing what it opened if one fails); `close()` drains: it stops taking
 * messages (a message delivered from then on is held, unacknowledged, and rejected once the subscriptions close, so
 * the broker delivers it again, to this group's next member), waits for the handlers in flight up to `drainMs`,
 * cancels those still running (their context's signal aborts with an error marked `transient`, so they are
 * redelivered, never dead-lettered), then closes the subscriptions. {@linkcode MessageRouter.attach} ties both to a
 * `Service`.
 *
 * @example Consume a topic with the default guards, standalone
 * ```ts
 * import { createMemoryBroker } from "./adapters/memory.ts";
 * import { MessageRouter } from "./router.ts";
 * const bus = createMemoryBroker();
 * const router = new MessageRouter({ bus, timeoutMs: 2_000 })
 *   .subscribe("orders.events", async (msg) => console.log(msg.id), { group: "billing" });
 * await router.start();
 * await bus.publish("orders.events", { payload: new TextEncoder().encode("{}") });
 * await router.close();
 * await bus.close();
 * ```
 */
export class MessageRouter {
  readonly #options: RouterOptions;
  readonly #logger: Logger;
  readonly #drainMs: number;
  readonly #routes: Route[] = [];
  readonly #subscriptions: Subscription[] = [];
  /** Each live subscription's consumer group, for its lag. */
  readonly #groups = new Map<Subscription, string>();
  #registry?: Registry;
  /** Resolves when the subscriptions are about to close: messages held since the drain began are rejected then. */
  readonly #released = Promise.withResolvers<void>();
  #state: RouterState = "created";
  /** One controller per handler in flight, aborted when the drain deadline passes. */
  readonly #inFlight = new Set<AbortController>();
  #idle?: PromiseWithResolvers<void>;
  #starting?: Promise<void>;
  #closing?: Promise<void>;

  constructor(options: RouterOptions = {}) {
    this.#options = options;
    this.#logger = options.logger ?? createLogger("messaging");
    this.#drainMs = options.drainMs ?? 10_000;
    if (options.registry) this.#measureOn(options.registry);
    if (!(this.#drainMs >= 0) || this.#drainMs === Infinity) {
      throw new RangeError(
        `Cannot create a message router as drainMs is not a finite number of at least 0: current value is ${this.#drainMs}`,
      );
    }
  }

  /** Current lifecycle state. */
  get state(): RouterState {
    return this.#state;
  }

  /** Handlers running now (held messages of a drain not counted). */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /**
   * Declares a subscription of `handler` to `topic`, subscribed by `start()`. Only before `start()`; the guards'
   * options are checked here, so a bad one throws at once.
   */
  subscribe(topic: string, handler: MessageHandler, options: RouteOptions = {}): this {
    if (this.#state !== "created") {
      throw new TypeError(`Cannot subscribe to "${topic}" as the message router is ${this.#state}`);
    }
    if (typeof topic !== "string" || topic === "") {
      throw new TypeError(`Cannot subscribe as the topic is not a non-empty string: current value is ${topic}`);
    }
    if (typeof handler !== "function") {
      throw new TypeError(
        `Cannot subscribe to "${topic}" as the handler is not a function: current type is ${typeof handler}`,
      );
    }
    const source = options.bus ?? this.#options.bus;
    if (!source) throw new TypeError(`Cannot subscribe to "${topic}" as neither the route nor the router names a bus`);
    const retryOptions = options.retry ?? this.#options.retry ?? {};
    const inner = [
      retry({ maxAttempts: 3, ...retryOptions }),
      timeout({ ms: options.timeoutMs ?? this.#options.timeoutMs ?? 5_000 }),
      ...this.#options.middleware ?? [],
      ...options.middleware ?? [],
    ];
    const policy = options.deadLetter ?? this.#options.deadLetter ?? {};
    const deadLetterAfter = policy === false ? 1 : policy.maxAttempts ?? 5;
    if (!Number.isInteger(deadLetterAfter) || deadLetterAfter < 1) {
      throw new RangeError(
        `Cannot subscribe to "${topic}" as deadLetter.maxAttempts is not a positive integer: current value is ${deadLetterAfter}`,
      );
    }
    this.#routes.push({
      topic,
      handler,
      options,
      bus: typeof source === "function" ? source : () => Promise.resolve(source),
      inner,
      deadLetter: policy,
    });
    return this;
  }

  /** Subscribes every declared route, in declaration order; on a failure closes those it opened and rejects. */
  start(): Promise<void> {
    if (this.#state !== "created") {
      return Promise.reject(new TypeError(`Cannot start the message router as it is ${this.#state}`));
    }
    this.#state = "starting";
    this.#starting = this.#start();
    return this.#starting;
  }

  async #start(): Promise<void> {
    try {
      for (const route of this.#routes) {
        if (this.#state !== "starting") throw new Error("the message router was closed while starting");
        const bus = await route.bus();
        const group = route.options.group ?? "";
        const measured = this.#registry ? [consumerMetrics(this.#registry, route.topic, group)] : [];
        const guarded = chainHandlers(...measured, ...this.#deadLetterFor(route, bus), ...route.inner)(route.handler);
        const { bus: _bus, middleware: _mw, timeoutMs: _t, retry: _r, deadLetter: _d, ...subscribeOptions } =
          route.options;
        const subscription = await bus.subscribe(route.topic, this.#admit(route.topic, guarded), subscribeOptions);
        this.#subscriptions.push(subscription);
        this.#groups.set(subscription, group);
      }
    } catch (err) {
      this.#state = "draining";
      this.#released.resolve();
      await this.#closeSubscriptions();
      this.#state = "closed";
      throw err;
    }
    if (this.#state === "starting") this.#state = "running";
  }

  /** Where the bus redelivers, a message that keeps failing goes to its dead-letter topic instead of blocking its key. */
  #deadLetterFor(route: Route, bus: PubSub): HandlerMiddleware[] {
    if (route.deadLetter === false || !bus.features.redelivery) return [];
    const policy = { publisher: bus, ...route.deadLetter };
    if (this.#registry) policy.publisher = countPublishes(this.#registry, policy.publisher, route.topic);
    return [deadLetter(route.topic, policy)];
  }

  /**
   * Counts the handlers in flight, each under a signal the drain deadline can abort; once draining, holds a new
   * message until the subscriptions close, then rejects it.
   */
  #admit(topic: string, guarded: MessageHandler): MessageHandler {
    return async (msg) => {
      if (this.#state !== "starting" && this.#state !== "running") {
        this.#logger.debug("message router is draining; message held for redelivery", { topic, messageId: msg.id });
        await this.#released.promise;
        throw new Error(`Cannot handle message ${msg.id} from "${topic}" as the message router is closing`);
      }
      const parent = currentContext();
      const controller = new AbortController();
      const onParentAbort = () => controller.abort(parent?.signal.reason);
      if (parent?.signal.aborted) onParentAbort();
      else parent?.signal.addEventListener("abort", onParentAbort, { once: true });
      const ctx: Context = { ...parent, requestId: parent?.requestId ?? newRequestId(), signal: controller.signal };
      this.#inFlight.add(controller);
      try {
        await runWithContext(ctx, () => guarded(msg));
      } finally {
        parent?.signal.removeEventListener("abort", onParentAbort);
        this.#inFlight.delete(controller);
        if (this.#inFlight.size === 0) this.#idle?.resolve();
      }
    };
  }

  /**
   * Drains and stops: refuses new messages, waits up to `drainMs` (or until `signal` aborts) for the handlers in
   * flight, cancels those still running, then closes every subscription. Idempotent; a router closed before it
   * started just ends.
   */
  close(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (!this.#closing) {
      if (this.#state === "created" || this.#state === "closed") {
        this.#state = "closed";
        this.#closing = Promise.resolve();
      } else {
        // At once, so a message delivered from now on is held even before the start in progress settles.
        this.#state = "draining";
        this.#closing = this.#close(options.signal);
      }
    }
    return this.#closing;
  }

  async #close(signal?: AbortSignal): Promise<void> {
    await this.#starting?.catch(() => {});
    if (this.#state === "closed") return;
    if (!(await this.#drained(signal))) {
      this.#logger.warn("message router drain deadline passed with handlers in flight; cancelling them", {
        inFlight: this.#inFlight.size,
        drainMs: this.#drainMs,
      });
      // Transient, so the dead-letter middleware never parks a message only because the service stopped under it.
      const reason = Object.assign(new Error("the message router closed before the handler finished"), {
        transient: true,
      });
      for (const controller of this.#inFlight) controller.abort(reason);
    }
    this.#released.resolve();
    await this.#closeSubscriptions();
    this.#state = "closed";
  }

  /** Resolves true once nothing is in flight, false when `drainMs` passed or `signal` aborted first. */
  async #drained(signal?: AbortSignal): Promise<boolean> {
    if (this.#inFlight.size === 0) return true;
    this.#idle = Promise.withResolvers<void>();
    const gaveUp = Promise.withResolvers<boolean>();
    const timer = setTimeout(() => gaveUp.resolve(false), this.#drainMs);
    const onAbort = () => gaveUp.resolve(false);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) onAbort();
    try {
      return await Promise.race([this.#idle.promise.then(() => true), gaveUp.promise]);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  #measureOn(registry: Registry): void {
    this.#registry = registry;
    consumerLagGauge(registry, () => this.#lagSources());
  }

  /** The live subscriptions whose adapter tells their lag. */
  *#lagSources(): Iterable<{ group: string; lag: () => Promise<readonly ConsumerLag[]> }> {
    for (const [sub, group] of this.#groups) if (sub.lag) yield { group, lag: () => sub.lag!() };
  }

  async #closeSubscriptions(): Promise<void> {
    const subscriptions = this.#subscriptions.splice(0);
    this.#groups.clear();
    await Promise.all(
      subscriptions.map((sub) =>
        sub.close().catch((err) => this.#logger.error("message router could not close a subscription", { err }))
      ),
    );
  }

  /**
   * Runs the router from start to stop of `svc`: `start()` as a start hook (so the service is ready only once every
   * subscription is live) and `close()` as the stop hook, bounded by the service's drain deadline too. With `check`,
   * also a readiness check of that name on the router's bus ({@linkcode checkBus}).
   *
   * @example Consumers of a service, with the events bus on /readyz
   * ```ts ignore
   * new MessageRouter({ bus: () => infra.events(), logger: svc.logger })
   *   .subscribe("inventory.commands", handleCommand, { group: "inventory" })
   *   .attach(svc, { check: "events" });
   * ```
   */
  attach(svc: Service, options: { check?: string } = {}): this {
    if (options.check !== undefined) {
      const bus = this.#options.bus;
      if (!bus) throw new TypeError(`Cannot check bus "${options.check}" as the message router has no bus`);
      checkBus(svc, options.check, typeof bus === "function" ? bus : () => Promise.resolve(bus));
    }
    if (!this.#registry) this.#measureOn(svc.registry);
    svc.onStart("message router", async () => {
      // Subscribing in the service's scope attributes the deliveries' spans to it (see `tracePubSub`).
      await withService(svc.name, () => this.start());
      svc.onStop("message router", (signal) => this.close({ signal }));
    });
    return this;
  }
}
