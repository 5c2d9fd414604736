/**
 * Internals shared by the concurrency primitives: argument checks with the house message shape, and the signal a
 * unit of work runs under (its own signals plus the current request context's).
 * @module
 */
import { currentContext } from "../context/mod.ts";

/** Throws a RangeError unless `value` is an integer >= 1 (or `Infinity` when `infinite` is allowed). */
export function checkCount(value: number, action: string, name: string, infinite = false): void {
  if (typeof value !== "number" || !(Number.isInteger(value) || (infinite && value === Infinity)) || value < 1) {
    throw new RangeError(
      `Cannot ${action} as ${name} is not an integer >= 1${infinite ? " or Infinity" : ""}: current value is ${
        String(value)
      }`,
    );
  }
}

/** Throws a RangeError unless `value` is `undefined` or a finite number >= 0. */
export function checkMs(value: number | undefined, action: string, name: string): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
    throw new RangeError(
      `Cannot ${action} as ${name} is not a finite number of milliseconds >= 0: current value is ${String(value)}`,
    );
  }
}

/** Throws a TypeError unless `value` is a function. */
export function checkFunction(value: unknown, action: string, name: string): void {
  if (typeof value !== "function") {
    throw new TypeError(`Cannot ${action} as ${name} is not a function: current value is ${describe(value)}`);
  }
}

/** A short rendering of a bad argument for an error message. */
export function describe(value: unknown): string {
  if (typeof value === "function") return "a function";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "an array";
  if (value !== null && typeof value === "object") return "an object";
  return String(value);
}

/**
 * A controller whose signal also follows `signal` and the current request context's signal, so work started under a
 * request is cancelled with it. `dispose` detaches it from its parents once the work is over.
 */
export function linkedController(signal?: AbortSignal): { controller: AbortController; dispose: () => void } {
  const controller = new AbortController();
  const parents = [signal, currentContext()?.signal].filter((s): s is AbortSignal => s !== undefined);
  const aborted = parents.find((s) => s.aborted);
  if (aborted) {
    controller.abort(aborted.reason);
    return { controller, dispose: () => {} };
  }
  const listeners = parents.map((parent) => {
    const onAbort = () => controller.abort(parent.reason);
    parent.addEventListener("abort", onAbort, { once: true });
    return () => parent.removeEventListener("abort", onAbort);
  });
  return { controller, dispose: () => listeners.forEach((remove) => remove()) };
}

/** The reason a budget of `ms` ends its work with: the same DOMException `AbortSignal.timeout` uses. */
export function budgetExceeded(what: string, ms: number): DOMException {
  return new DOMException(`${what} exceeded its budget of ${ms} ms`, "TimeoutError");
}

/** Settles as `promise` does, or rejects with the signal's reason as soon as it aborts. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
