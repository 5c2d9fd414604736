/**
 * Shared by the messaging benchmarks (`bench_messaging.ts`, `bench_kafka_clients.ts`): counting consumed messages and
 * their end-to-end latencies, read from the publish time each payload carries in its first 8 bytes.
 */

/** A payload whose first 8 bytes hold this instead of a publish time is a warm-up message: it is not counted. */
export const WARM_UP = -1;

/**
 * Counts consumed messages and keeps each one's latency (`performance.now()` at consumption minus the publish time in
 * the payload's first 8 bytes, little-endian float64). `warm()` and `done()` reject once `stallMs` pass without a
 * consumed message.
 *
 * @example
 * ```ts
 * import { Recorder } from "./recorder.ts";
 * const rec = new Recorder(1);
 * const payload = new Uint8Array(8);
 * new DataView(payload.buffer).setFloat64(0, performance.now(), true);
 * rec.record(payload);
 * await rec.done();
 * ```
 */
export class Recorder {
  readonly latencies: Float64Array;
  received = 0;
  lastProgress = performance.now();
  readonly #warm = Promise.withResolvers<void>();
  readonly #done = Promise.withResolvers<number>();
  /** Publishers waiting for consumption to catch up, in message order. */
  readonly #waiting: { i: number; limit: number; resolve: () => void }[] = [];

  constructor(readonly expected: number, readonly stallMs = 30_000) {
    this.latencies = new Float64Array(expected);
  }

  /** Records a consumed payload (any `Uint8Array` view, the Node `Buffer` Kafka clients hand out included). */
  record(payload: Uint8Array): void {
    const now = performance.now();
    const sent = new DataView(payload.buffer, payload.byteOffset, 8).getFloat64(0, true);
    if (sent === WARM_UP) return this.#warm.resolve();
    if (this.received < this.expected) this.latencies[this.received] = now - sent;
    this.lastProgress = now;
    if (++this.received === this.expected) this.#done.resolve(now);
    while (this.#waiting.length > 0 && this.#waiting[0].i - this.received < this.#waiting[0].limit) {
      this.#waiting.shift()!.resolve();
    }
  }

  /** Resolves once fewer than `limit` messages before message `i` are unconsumed; `undefined` when that holds now. */
  room(i: number, limit: number): Promise<void> | undefined {
    if (i - this.received < limit) return undefined;
    return new Promise((resolve) => this.#waiting.push({ i, limit, resolve }));
  }

  /** Resolves once a warm-up message arrived. */
  warm(): Promise<void> {
    this.lastProgress = performance.now();
    return this.#stallGuard(this.#warm.promise);
  }

  /** Resolves with the time the last expected message was consumed. */
  done(): Promise<number> {
    this.lastProgress = performance.now();
    return this.#stallGuard(this.#done.promise);
  }

  /** Rejects once `stallMs` pass without a consumed message. */
  async #stallGuard<T>(promise: Promise<T>): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<never>((_, reject) => {
      const check = () => {
        if (performance.now() - this.lastProgress > this.stallMs) {
          reject(new Error(`consumed ${this.received} of ${this.expected} messages, none for ${this.stallMs} ms`));
        } else timer = setTimeout(check, 1000);
      };
      timer = setTimeout(check, 1000);
    });
    try {
      return await Promise.race([promise, stalled]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The `p` quantile (0..1) of an ascending array. */
export function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}
