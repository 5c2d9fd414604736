import { contextFromHeaders, contextHeaders, runWithContext } from "../context/mod.ts";
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
  const { ctx, dispose } = contextFromHeaders((name) => msg.headers[name]);
  let result: Promise<void> | void;
  try {
    result = runWithContext(ctx, () => handler(msg));
  } catch (err) {
    dispose();
    return Promise.reject(err);
  }
  // Not an async function: a handler that finishes synchronously costs no extra promise and microtask turns.
  if (typeof (result as PromiseLike<void> | undefined)?.then !== "function") {
    dispose();
    return DONE;
  }
  return Promise.resolve(result).then(() => dispose(), (err) => {
    dispose();
    throw err;
  });
}

const DONE = Promise.resolve();
