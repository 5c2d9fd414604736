/**
 * One inconsistency a check found: which record (`subject`, such as an order id) and what is wrong with it, in words
 * an operator reads. A check may carry more fields its own `repair` needs.
 *
 * @example
 * ```ts
 * import type { Drift } from "./check.ts";
 * const drift: Drift = { subject: "order-42", detail: "stock RESERVED for an order that is CANCELLED" };
 * ```
 */
export interface Drift {
  subject: string;
  detail: string;
}

/**
 * What a repair did: `repaired` when it changed something (or asked the owning path to), `skipped` when the drift was
 * gone by the time it looked again (fixed by something else since `find()`, or by an earlier repair).
 *
 * @example
 * ```ts
 * import type { RepairOutcome } from "./check.ts";
 * const outcome: RepairOutcome = "skipped";
 * ```
 */
export type RepairOutcome = "repaired" | "skipped";

/**
 * A reconciliation check: compares what should agree (two tables, a table and another service's view) and knows how
 * to put one drift right.
 *
 * The contract:
 * - `find()` only reads; it returns every drift it sees (a dry run calls nothing else).
 * - `repair(drift)` is idempotent: it looks again under a lock or a conditional write and answers `skipped` when the
 *   drift is gone, so running it twice, or after something else fixed the record, is harmless. It should go through
 *   the owning service's normal paths (its transactions, its outbox, its commands), so a repair is traced and
 *   deduplicated like any other change.
 * - A repair that throws fails that drift only; the others still run. Both take an `AbortSignal` to stop early.
 *
 * @example A check on one table
 * ```ts
 * import type { Check, Drift } from "./check.ts";
 * const rows = new Map([["a", -1], ["b", 3]]);
 * const negative: Check = {
 *   name: "negative-stock",
 *   description: "products whose stock is below zero",
 *   find: () =>
 *     Promise.resolve([...rows].filter(([, n]) => n < 0).map(([sku, n]) => ({ subject: sku, detail: `stock is ${n}` }))),
 *   repair: (drift: Drift) => {
 *     if ((rows.get(drift.subject) ?? 0) >= 0) return Promise.resolve("skipped");
 *     rows.set(drift.subject, 0);
 *     return Promise.resolve("repaired");
 *   },
 * };
 * ```
 */
export interface Check<D extends Drift = Drift> {
  /** Stable name, unique within a reconciler (kebab-case): it labels reports, logs and metrics. */
  readonly name: string;
  /** One sentence saying what the check compares. */
  readonly description: string;
  /** The drifts present now. */
  find(signal: AbortSignal): Promise<D[]>;
  /** Puts one drift right, or answers `skipped` when it is gone; idempotent. */
  repair(drift: D, signal: AbortSignal): Promise<RepairOutcome>;
}

/**
 * Declares a check with its drift type inferred from `find`, so `repair` receives the same fields.
 *
 * @example
 * ```ts
 * import { defineCheck } from "./check.ts";
 * const check = defineCheck({
 *   name: "always-clean",
 *   description: "finds nothing",
 *   find: () => Promise.resolve([] as { subject: string; detail: string; sku: string }[]),
 *   repair: (drift) => Promise.resolve(drift.sku ? "repaired" : "skipped"),
 * });
 * ```
 */
export function defineCheck<D extends Drift>(check: Check<D>): Check<D> {
  if (!/^[a-z0-9]+(-[a-z0-9]+)*$/.test(check.name)) {
    throw new TypeError(`Cannot define a check named ${JSON.stringify(check.name)}: names are kebab-case`);
  }
  return check;
}
