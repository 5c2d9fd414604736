import { contextFromHeaders, ContextHeaders, contextHeaders, runWithContext } from "../context/mod.ts";
import type { Message, MessageHandler } from "./message.ts";

/**
 * Headers to publish: the current context's request id, traceparent and deadline, overridden by `headers` the caller
 * set explicitly (an explicit header always wins). Returns a fresh object; `headers` is not mutated.
 *
 * @example Stamp the current request's context onto a message
 * ```ts
 * import { runWithContext } from "../context/mod.ts";
 * import { outgoingHeaders } from "./context_propagation.ts";
 * const ctx = { requestId: "r-1", signal: new AbortController().signal };
 * runWithContext(ctx, () => outgoingHeaders({ "content-type": "application/json" }));
 * // { "x-request-id": "r-1", "content-type": "application/json" }
 * ```
 */
export function outgoingHeaders(headers?: Record<string, string>): Record<string, string> {
  return { ...contextHeaders(), ...headers };
}

/**
 * The header of a reply naming the request it answers (the request's message id); see `Publisher.request`.
 *
 * @example Match a reply to its request
 * ```ts
 * import { CORRELATION_ID_HEADER } from "./context_propagation.ts";
 * const answers = (reply: { headers: Record<string, string> }, requestId: string) =>
 *   reply.headers[CORRELATION_ID_HEADER] === requestId;
 * ```
 */
export const CORRELATION_ID_HEADER = "x-correlation-id";

/**
 * Headers to send a request with: {@linkcode outgoingHeaders}, with the request's own `deadline` (epoch milliseconds,
 * the earliest of its timeout and the context's; none when only a signal bounds it) as `x-deadline-ms`, so the responder's context ends when the caller
 * stops waiting.
 *
 * @example A request due in one second
 * ```ts
 * import { requestHeaders } from "./context_propagation.ts";
 * const deadline = Date.now() + 1_000;
 * requestHeaders({ "content-type": "application/json" }, deadline)["x-deadline-ms"] === String(deadline); // true
 * ```
 */
export function requestHeaders(
  headers: Record<string, string> | undefined,
  deadline: number | undefined,
): Record<string, string> {
  const out = outgoingHeaders(headers);
  if (deadline !== undefined) out[ContextHeaders.deadline] = String(deadline);
  return out;
}

/**
 * Headers to send a reply with: {@linkcode outgoingHeaders} (the responder runs in the caller's context, so its request
 * id is the caller's) and {@linkcode CORRELATION_ID_HEADER} set to the id of the request answered.
 *
 * @example Headers of a reply to request "req-1"
 * ```ts
 * import { replyHeaders } from "./context_propagation.ts";
 * replyHeaders("req-1", { "content-type": "text/plain" }); // { "content-type": "text/plain", "x-correlation-id": "req-1" }
 * ```
 */
export function replyHeaders(requestId: string, headers?: Record<string, string>): Record<string, string> {
  const out = outgoingHeaders(headers);
  out[CORRELATION_ID_HEADER] = requestId;
  return out;
}

/**
 * Runs `handler(msg)` inside a context restored from the message headers (request id, traceparent, deadline as
 * an `AbortSignal`), so logs and downstream calls made by the handler carry them. Every adapter delivers through it.
 *
 * @example Deliver a message in its publisher's context
 * ```ts
 * import { currentContext } from "../context/mod.ts";
 * import { handleInContext } from "./context_propagation.ts";
 * const msg = { id: "m-1", headers: { "x-request-id": "r-1" }, payload: new Uint8Array(), attempt: 1, timestamp: 0 };
 * await handleInContext(async () => console.log(currentContext()?.requestId), msg); // logs "r-1"
 * ```
 */
export function handleInContext(handler: MessageHandler, msg: Message): Promise<void> {
  return handleInContextOrSync(handler, msg) ?? DONE;
}

/**
 * {@linkcode handleInContext}, but `undefined` when the handler finished synchronously without throwing: an adapter
 * delivering many small messages can then go on to the next one in the same turn instead of waiting for a promise
 * reaction (a microtask and a queued message per message, for a handler that does not await).
 *
 * @example Deliver the next message at once when the handler did not await
 * ```ts
 * import { handleInContextOrSync } from "./context_propagation.ts";
 * const msg = { id: "m-1", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 };
 * const pending = handleInContextOrSync(() => {}, msg); // undefined: done already
 * await pending;
 * ```
 */
export function handleInContextOrSync(handler: MessageHandler, msg: Message): Promise<void> | undefined {
  const { ctx, dispose } = contextFromHeaders((name) => msg.headers[name]);
  let result: Promise<void> | void;
  try {
    result = runWithContext(ctx, () => handler(msg));
  } catch (err) {
    dispose();
    return Promise.reject(err);
  }
  if (typeof (result as PromiseLike<void> | undefined)?.then !== "function") {
    dispose();
    return undefined;
  }
  return Promise.resolve(result).then(() => dispose(), (err) => {
    dispose();
    throw err;
  });
}

const DONE = Promise.resolve();
