/**
 * A request found nobody subscribed to its topic, so nobody could answer it. Raised at once by adapters that can tell
 * (`features.noResponders`: NATS Core, where the server says so, and the in-memory broker); elsewhere such a request
 * ends with {@linkcode RequestTimeoutError}. A responder may come up later, so it is `transient`.
 *
 * @example Fall back when no service answers
 * ```ts
 * import { NoRespondersError } from "./request_errors.ts";
 * const err: unknown = new NoRespondersError("pricing.quote");
 * if (err instanceof NoRespondersError) console.log(`nobody serves ${err.topic}; using the list price`);
 * ```
 */
export class NoRespondersError extends Error {
  /** The topic the request was sent to. */
  readonly topic: string;
  /**
   * Marks an outage rather than a fault of the request itself: message consumers retry such a failure instead of
   * counting it toward dead-lettering, and callers may try again later.
   */
  readonly transient = true;

  /** Creates the error; `cause` is the broker client's own error when there was one. */
  constructor(topic: string, options: ErrorOptions = {}) {
    super(`Cannot get a reply to a request on "${topic}" as nobody is subscribed to it`, options);
    this.name = "NoRespondersError";
    this.topic = topic;
  }
}

/**
 * A request's deadline passed before a reply arrived: the earliest of `options.timeoutMs` and the current context's
 * deadline (the context's signal aborting with a `TimeoutError` counts as that deadline). The responder may be slow
 * or overloaded, so it is `transient`.
 *
 * @example Tell a slow responder from a missing one
 * ```ts
 * import { RequestTimeoutError } from "./request_errors.ts";
 * const err: unknown = new RequestTimeoutError("pricing.quote", 250);
 * if (err instanceof RequestTimeoutError) console.log(`no reply on ${err.topic} within ${err.timeoutMs} ms`);
 * ```
 */
export class RequestTimeoutError extends Error {
  /** The topic the request was sent to. */
  readonly topic: string;
  /** How long the request waited, in milliseconds. */
  readonly timeoutMs: number;
  /** Marks a condition that may pass: a retry later (with a fresh deadline) may get a reply. */
  readonly transient = true;

  /** Creates the error; `cause` is the abort reason of the context's signal when that is what ended the wait. */
  constructor(topic: string, timeoutMs: number, options: ErrorOptions = {}) {
    super(`Cannot get a reply to a request on "${topic}" as its deadline passed after ${timeoutMs} ms`, options);
    this.name = "RequestTimeoutError";
    this.topic = topic;
    this.timeoutMs = timeoutMs;
  }
}
