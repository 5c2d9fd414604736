import { ContextHeaders, currentContext } from "../../context/mod.ts";
import type { Message, OutgoingMessage, RequestOptions } from "../message.ts";
import { RequestTimeoutError } from "../request_errors.ts";

/** The wait of a request that nothing else bounds (see `RequestOptions.timeoutMs`). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

/**
 * Throws a `TypeError`/`RangeError` unless `options` are valid request options.
 *
 * @example Accept a 100 ms timeout
 * ```ts
 * import { assertRequestOptions } from "./_request.ts";
 * assertRequestOptions({ timeoutMs: 100 });
 * ```
 */
export function assertRequestOptions(options: RequestOptions | undefined): void {
  const timeoutMs = options?.timeoutMs;
  if (timeoutMs !== undefined && !(typeof timeoutMs === "number" && timeoutMs > 0 && Number.isFinite(timeoutMs))) {
    throw new RangeError(
      `Cannot send a request as timeoutMs is not a positive finite number: current value is ${timeoutMs}`,
    );
  }
  const signal = options?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(`Cannot send a request as signal is not an AbortSignal: current value is ${typeof signal}`);
  }
}

/**
 * The deadline (epoch milliseconds) a request carries and waits for: the earliest of `options.timeoutMs` from now and
 * the current context's deadline, {@linkcode DEFAULT_REQUEST_TIMEOUT_MS} from now when nothing bounds the wait, and
 * `undefined` when only `options.signal` does.
 *
 * @example The deadline of a request given 100 ms
 * ```ts
 * import { requestDeadline } from "./_request.ts";
 * const deadline = requestDeadline({ timeoutMs: 100 }); // Date.now() + 100
 * ```
 */
export function requestDeadline(options: RequestOptions | undefined): number | undefined {
  const contextDeadline = currentContext()?.deadline;
  let timeoutMs = options?.timeoutMs;
  if (timeoutMs === undefined && contextDeadline === undefined && options?.signal === undefined) {
    timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS;
  }
  const own = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  if (own === undefined) return contextDeadline;
  return contextDeadline === undefined ? own : Math.min(own, contextDeadline);
}

/** What a transport does with a request being sent: `send` it and call back with the reply or a failure. */
export type RequestSend = (answered: (reply: Message) => void, failed: (err: unknown) => void) => (() => void) | void;

/**
 * Waits for the reply to a request, cancelling the wait (the cleanup `send` returned runs) when `deadline` passes
 * (`RequestTimeoutError`), `options.signal` or the current context's signal aborts (its reason; `RequestTimeoutError`
 * when the reason is a `TimeoutError`), or `pending`'s owner calls the failure it finds there (adapter closing).
 *
 * @example A transport that answers at once
 * ```ts
 * import { awaitReply } from "./_request.ts";
 * const reply = { id: "r", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 };
 * await awaitReply("t", undefined, Date.now() + 100, new Set(), (answered) => answered(reply));
 * ```
 */
export function awaitReply(
  topic: string,
  options: RequestOptions | undefined,
  deadline: number | undefined,
  pending: Set<(err: unknown) => void>,
  send: RequestSend,
): Promise<Message> {
  const started = Date.now();
  const signals: AbortSignal[] = [];
  if (options?.signal) signals.push(options.signal);
  const ctx = currentContext();
  if (ctx) signals.push(ctx.signal);
  return new Promise<Message>((resolve, reject) => {
    let done = false;
    let cleanup: (() => void) | void = undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener("abort", onAbort);
      pending.delete(fail);
      cleanup?.();
      settle();
    };
    const timedOut = (cause?: unknown) => new RequestTimeoutError(topic, Date.now() - started, { cause });
    const fail = (err: unknown) => finish(() => reject(err));
    function onAbort(this: AbortSignal) {
      const reason = this.reason;
      fail(reason instanceof DOMException && reason.name === "TimeoutError" ? timedOut(reason) : reason);
    }
    for (const s of signals) {
      if (s.aborted) return onAbort.call(s);
    }
    for (const s of signals) s.addEventListener("abort", onAbort, { once: true });
    if (deadline !== undefined) timer = setTimeout(() => fail(timedOut()), Math.max(0, deadline - Date.now()));
    pending.add(fail);
    try {
      cleanup = send((reply) => finish(() => resolve(reply)), fail);
    } catch (err) {
      fail(err);
    }
    // The transport may have answered or failed inside `send`, before its cleanup was known.
    if (done) cleanup?.();
  });
}

/**
 * Wraps a transport's way of sending a reply so that a request is answered at most once: the first call sends,
 * later ones reject.
 *
 * @example A second reply is refused
 * ```ts
 * import { respondOnce } from "./_request.ts";
 * const respond = respondOnce("req-1", () => Promise.resolve());
 * await respond({ payload: new Uint8Array() });
 * await respond({ payload: new Uint8Array() }).catch((err) => console.log(err.message)); // already answered
 * ```
 */
export function respondOnce(
  requestId: string,
  send: (response: OutgoingMessage) => Promise<void>,
): (response: OutgoingMessage) => Promise<void> {
  let answered = false;
  return (response) => {
    if (answered) {
      return Promise.reject(new Error(`Cannot reply to request "${requestId}" as it was already answered`));
    }
    try {
      const sent = send(response);
      answered = true;
      return sent;
    } catch (err) {
      // Refused before anything was sent (a bad response): the responder may still answer properly.
      return Promise.reject(err);
    }
  };
}

/**
 * Whether a request's deadline (its `x-deadline-ms` header) already passed: its caller stopped waiting, so it is
 * dropped instead of handled.
 *
 * @example A request due at the epoch has expired
 * ```ts
 * import { requestExpired } from "./_request.ts";
 * requestExpired({ "x-deadline-ms": "1" }); // true
 * ```
 */
export function requestExpired(headers: Record<string, string>): boolean {
  const deadline = Number(headers[ContextHeaders.deadline]);
  return Number.isFinite(deadline) && deadline > 0 && deadline <= Date.now();
}
