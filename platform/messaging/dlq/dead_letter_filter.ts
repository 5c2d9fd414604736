/**
 * Which dead letters an operation applies to: every given criterion must match (an empty filter matches all).
 * Times are ISO 8601 and compared with the letter's `dlq-failed-at` header; a letter without one matches no time range.
 *
 * @example Letters from the inventory commands that failed on a timeout during one hour
 * ```ts
 * import type { DeadLetterFilter } from "./dead_letter_filter.ts";
 * const filter: DeadLetterFilter = {
 *   source: "inventory.commands",
 *   error: "TimeoutError",
 *   failedAfter: "2026-12-04T10:00:00Z",
 *   failedBefore: "2026-12-04T11:00:00Z",
 * };
 * ```
 */
export interface DeadLetterFilter {
  /** The topic the message failed on (`dlq-source-topic`), exactly. */
  source?: string;
  /** A substring of the error (`dlq-error`), case-sensitive. */
  error?: string;
  /** Failed at or after this instant (inclusive). */
  failedAfter?: string;
  /** Failed before this instant (exclusive). */
  failedBefore?: string;
}

/**
 * Whether a letter with these fields matches `filter`.
 *
 * @example Keep the letters that failed on a missing order
 * ```ts
 * import { matchesDeadLetter } from "./dead_letter_filter.ts";
 * matchesDeadLetter({ error: "no such order" }, { sourceTopic: "orders.events", error: "Error: no such order" }); // true
 * matchesDeadLetter({ source: "payments.events" }, { sourceTopic: "orders.events" }); // false
 * ```
 */
export function matchesDeadLetter(
  filter: DeadLetterFilter | undefined,
  letter: { sourceTopic?: string; error?: string; failedAt?: string },
): boolean {
  if (!filter) return true;
  if (filter.source !== undefined && letter.sourceTopic !== filter.source) return false;
  if (filter.error !== undefined && !(letter.error ?? "").includes(filter.error)) return false;
  if (filter.failedAfter !== undefined || filter.failedBefore !== undefined) {
    const at = letter.failedAt === undefined ? NaN : Date.parse(letter.failedAt);
    if (Number.isNaN(at)) return false;
    if (filter.failedAfter !== undefined && at < Date.parse(filter.failedAfter)) return false;
    if (filter.failedBefore !== undefined && at >= Date.parse(filter.failedBefore)) return false;
  }
  return true;
}

/**
 * Checks an untrusted value (a JSON body's `filter`, a query string turned into an object) and returns it as a
 * {@linkcode DeadLetterFilter}, or throws a `TypeError` naming the first problem: a field that is not a string, an
 * unknown field, or a time that is not ISO 8601.
 *
 * @example Validate a filter from a request body
 * ```ts
 * import { parseDeadLetterFilter } from "./dead_letter_filter.ts";
 * parseDeadLetterFilter({ source: "orders.events", failedAfter: "2026-12-04T10:00:00Z" }); // ok
 * try {
 *   parseDeadLetterFilter({ failedAfter: "yesterday" });
 * } catch (err) {
 *   console.log((err as TypeError).message); // Cannot filter dead letters as failedAfter is not an ISO 8601 time ...
 * }
 * ```
 */
export function parseDeadLetterFilter(value: unknown): DeadLetterFilter {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`Cannot filter dead letters as the filter is not an object: current value is ${show(value)}`);
  }
  const out: DeadLetterFilter = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    if (!FIELDS.has(k)) {
      throw new TypeError(
        `Cannot filter dead letters by "${k}": known fields are ${[...FIELDS].join(", ")}`,
      );
    }
    if (typeof v !== "string") {
      throw new TypeError(`Cannot filter dead letters as ${k} is not a string: current value is ${show(v)}`);
    }
    if ((k === "failedAfter" || k === "failedBefore") && (!ISO_8601.test(v) || Number.isNaN(Date.parse(v)))) {
      throw new TypeError(`Cannot filter dead letters as ${k} is not an ISO 8601 time: current value is ${show(v)}`);
    }
    out[k as keyof DeadLetterFilter] = v;
  }
  return out;
}

const FIELDS = new Set(["source", "error", "failedAfter", "failedBefore"]);
const ISO_8601 = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$/;

function show(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
}
