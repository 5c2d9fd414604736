/**
 * What happened to one drift: `found` (a dry run, or a repair run that stopped before it), `repaired`, `skipped`
 * (gone when looked at again) or `failed` (its repair threw; `error` says why).
 *
 * @example
 * ```ts
 * import type { DriftOutcome } from "./report.ts";
 * const outcome: DriftOutcome = "repaired";
 * ```
 */
export type DriftOutcome = "found" | "repaired" | "skipped" | "failed";

/**
 * One drift in a report.
 *
 * @example
 * ```ts
 * import type { DriftReport } from "./report.ts";
 * const line: DriftReport = { subject: "order-42", detail: "no receipt", outcome: "failed", error: "storage down" };
 * ```
 */
export interface DriftReport {
  subject: string;
  detail: string;
  outcome: DriftOutcome;
  error?: string;
}

/**
 * One check's part of a report: counts, every drift, and `error` when `find()` itself failed (then `drifts` is
 * empty and the other checks still ran).
 *
 * @example
 * ```ts
 * import type { CheckReport } from "./report.ts";
 * const part: CheckReport = {
 *   name: "pending-past-deadline",
 *   description: "orders still PENDING after their deadline",
 *   found: 1, repaired: 1, skipped: 0, failed: 0,
 *   drifts: [{ subject: "order-42", detail: "PENDING 5 s past its deadline", outcome: "repaired" }],
 * };
 * ```
 */
export interface CheckReport {
  name: string;
  description: string;
  found: number;
  repaired: number;
  skipped: number;
  failed: number;
  error?: string;
  drifts: DriftReport[];
}

/**
 * The result of one reconciliation run, as `POST /admin/reconcile` answers it (JSON). `clean` is true when no check
 * found a drift and none failed; after a repair run, `clean` is false if anything was found, even when all of it was
 * repaired (run again to see a clean report).
 *
 * @example
 * ```ts
 * import type { ReconcileReport } from "./report.ts";
 * const report: ReconcileReport = {
 *   service: "orders",
 *   mode: "dry-run",
 *   startedAt: "2026-12-05T00:00:00.000Z",
 *   finishedAt: "2026-12-05T00:00:00.020Z",
 *   durationMs: 20,
 *   clean: true,
 *   totals: { found: 0, repaired: 0, skipped: 0, failed: 0 },
 *   checks: [],
 * };
 * ```
 */
export interface ReconcileReport {
  /** The reconciler's name (the service that owns its checks). */
  service: string;
  mode: "dry-run" | "repair";
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  clean: boolean;
  /** Sums over the checks; `failed` counts failed repairs and failed `find()`s. */
  totals: { found: number; repaired: number; skipped: number; failed: number };
  checks: CheckReport[];
}
