import type { OutgoingMessage, SubscribeOptions } from "../message.ts";

/**
 * Throws a `TypeError` unless `topic` is a non-empty string without whitespace. Shared by every adapter so they all
 * reject the same inputs.
 *
 * @example
 * ```ts
 * import { assertTopic } from "./_arguments.ts";
 * assertTopic("orders.events", "publish");
 * ```
 */
export function assertTopic(topic: unknown, action: string): asserts topic is string {
  if (typeof topic !== "string" || topic.length === 0 || /\s/.test(topic)) {
    throw new TypeError(
      `Cannot ${action} as the topic is not a non-empty string without whitespace: current value is ${
        JSON.stringify(topic)
      }`,
    );
  }
}

/**
 * Throws a `TypeError` unless `msg` has a `Uint8Array` payload and string-valued headers.
 *
 * @example
 * ```ts
 * import { assertOutgoing } from "./_arguments.ts";
 * assertOutgoing({ payload: new Uint8Array([1]) });
 * ```
 */
export function assertOutgoing(msg: OutgoingMessage): void {
  if (!(msg?.payload instanceof Uint8Array)) {
    throw new TypeError(`Cannot publish as the payload is not a Uint8Array: current value is ${typeof msg?.payload}`);
  }
  for (const [name, value] of Object.entries(msg.headers ?? {})) {
    if (typeof value !== "string") {
      throw new TypeError(`Cannot publish as header "${name}" is not a string: current value is ${typeof value}`);
    }
  }
}

/**
 * The subscription's concurrency (default 1); throws a `RangeError` unless it is a positive integer.
 *
 * @example
 * ```ts
 * import { concurrencyOf } from "./_arguments.ts";
 * concurrencyOf({ concurrency: 4 }); // 4
 * concurrencyOf(undefined); // 1
 * ```
 */
export function concurrencyOf(options: SubscribeOptions | undefined): number {
  const n = options?.concurrency ?? 1;
  if (!Number.isInteger(n) || n < 1) {
    throw new RangeError(`Cannot subscribe as concurrency is not a positive integer: current value is ${n}`);
  }
  return n;
}

/**
 * Throws a `RangeError` when `payload` is longer than `maxBytes`, the adapter's declared
 * `Features.maxMessageBytes`; every adapter rejects oversize payloads the same way, before sending.
 *
 * @example
 * ```ts
 * import { assertPayloadSize } from "./_arguments.ts";
 * assertPayloadSize("orders.events", new Uint8Array(10), 1024);
 * ```
 */
export function assertPayloadSize(topic: string, payload: Uint8Array, maxBytes: number): void {
  if (payload.byteLength > maxBytes) {
    throw new RangeError(
      `Cannot publish to "${topic}" as the payload exceeds the adapter's maxMessageBytes of ${maxBytes}: current size is ${payload.byteLength} bytes`,
    );
  }
}

/**
 * The checks every adapter runs before it sends a message (`action` is "publish" or "send a request"): a valid
 * topic ({@linkcode assertTopic}), a well-formed message ({@linkcode assertOutgoing}) and a payload within `maxBytes`
 * ({@linkcode assertPayloadSize}).
 *
 * @example
 * ```ts
 * import { assertSendable } from "./_arguments.ts";
 * assertSendable("publish", "orders.events", { payload: new Uint8Array(10) }, 1024);
 * ```
 */
export function assertSendable(
  action: string,
  topic: unknown,
  msg: OutgoingMessage,
  maxBytes: number,
): asserts topic is string {
  assertTopic(topic, action);
  assertOutgoing(msg);
  assertPayloadSize(topic, msg.payload, maxBytes);
}

/**
 * Throws a `RangeError` unless `value` is a positive integer; returns it.
 *
 * @example
 * ```ts
 * import { positiveInteger } from "./_arguments.ts";
 * positiveInteger(5, "create an adapter", "maxDeliver"); // 5
 * ```
 */
export function positiveInteger(value: number, action: string, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`Cannot ${action} as ${name} is not a positive integer: current value is ${value}`);
  }
  return value;
}
