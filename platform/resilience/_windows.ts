/**
 * Sliding windows of counters, shared by the circuit breaker (calls, failures, slow calls) and the retry budget
 * (calls, retries). Both keep running totals, so recording and reading are O(1) on the hot path (a time window
 * touches at most its bucket count when a long idle period expires every bucket at once).
 */
export interface CounterWindow {
  /** Adds `by` to counter `field` at time `now`. */
  add(field: number, by: number, now: number): void;
  /** The total of counter `field` over the window ending at `now`. */
  total(field: number, now: number): number;
  /** Forgets everything. */
  clear(): void;
}

/**
 * The last `size` records: each record is one set of counter increments (`record()`), and the oldest drops out when a
 * new one comes in. `add` starts a new record only for field 0 (the call count); other fields add to the newest.
 */
export class CountWindow implements CounterWindow {
  readonly #size: number;
  readonly #fields: number;
  readonly #slots: Float64Array;
  readonly #totals: Float64Array;
  #next = 0;
  #filled = 0;

  constructor(size: number, fields: number) {
    this.#size = size;
    this.#fields = fields;
    this.#slots = new Float64Array(size * fields);
    this.#totals = new Float64Array(fields);
  }

  add(field: number, by: number): void {
    if (field === 0) {
      const base = this.#next * this.#fields;
      if (this.#filled === this.#size) {
        for (let f = 0; f < this.#fields; f++) this.#totals[f] -= this.#slots[base + f];
      } else {
        this.#filled++;
      }
      this.#slots.fill(0, base, base + this.#fields);
      this.#next = (this.#next + 1) % this.#size;
    }
    const newest = ((this.#next + this.#size - 1) % this.#size) * this.#fields;
    this.#slots[newest + field] += by;
    this.#totals[field] += by;
  }

  total(field: number): number {
    return this.#totals[field];
  }

  clear(): void {
    this.#slots.fill(0);
    this.#totals.fill(0);
    this.#next = 0;
    this.#filled = 0;
  }
}

/** Counters over the last `ms` milliseconds, in `buckets` buckets of `ms / buckets` each. */
export class TimeWindow implements CounterWindow {
  readonly #bucketMs: number;
  readonly #buckets: number;
  readonly #fields: number;
  readonly #slots: Float64Array;
  readonly #totals: Float64Array;
  /** Index (time / bucketMs) of the newest bucket written. */
  #head = -Infinity;

  constructor(ms: number, buckets: number, fields: number) {
    this.#bucketMs = ms / buckets;
    this.#buckets = buckets;
    this.#fields = fields;
    this.#slots = new Float64Array(buckets * fields);
    this.#totals = new Float64Array(fields);
  }

  #advance(now: number): void {
    const index = Math.floor(now / this.#bucketMs);
    if (index <= this.#head) return;
    if (index - this.#head >= this.#buckets) {
      this.#slots.fill(0);
      this.#totals.fill(0);
    } else {
      for (let i = this.#head + 1; i <= index; i++) {
        const base = this.#slot(i);
        for (let f = 0; f < this.#fields; f++) {
          this.#totals[f] -= this.#slots[base + f];
          this.#slots[base + f] = 0;
        }
      }
    }
    this.#head = index;
  }

  #slot(index: number): number {
    return (((index % this.#buckets) + this.#buckets) % this.#buckets) * this.#fields;
  }

  add(field: number, by: number, now: number): void {
    this.#advance(now);
    this.#slots[this.#slot(this.#head) + field] += by;
    this.#totals[field] += by;
  }

  total(field: number, now: number): number {
    this.#advance(now);
    return this.#totals[field];
  }

  clear(): void {
    this.#slots.fill(0);
    this.#totals.fill(0);
    this.#head = -Infinity;
  }
}
