/**
 * Reconciliation: the safety net that finds records which disagree (across tables, or across services' databases)
 * and puts them right. Messages, outboxes and sagas keep a system consistent in the normal case; reconciliation is
 * what catches the rest (a command dead-lettered, a row edited by hand, a bug) before a customer does.
 *
 * - A {@linkcode Check} declares what to compare (`find()`, read-only, returns {@linkcode Drift}s: a subject id and a
 *   detail) and how to repair one drift (`repair()`, idempotent: it looks again and answers `skipped` when the drift
 *   is gone, so a repair run twice, or after something else fixed the record, is harmless).
 * - A {@linkcode Reconciler} runs a service's checks on demand (`run({ repair, signal, onProgress })`, a dry run by
 *   default) and on a schedule (`schedule({ intervalMs })`), one run at a time, repairs `concurrency` at a time, a
 *   failure isolated to its drift (or its check); it logs and counts every run and keeps the last
 *   {@linkcode ReconcileReport}. {@linkcode reconcilerFor} wires one into a `Service` (schedule from start, close at
 *   stop, metrics on `/metrics`).
 * - {@linkcode reconcileEndpoints} serves it as the management API (the "dual API" beside the service's business
 *   API). Mount it behind a service token with an ops scope:
 *
 * ```
 * POST /admin/reconcile        body {"repair": false|true} (application/json; empty body = dry run)
 *                              200 -> ReconcileReport (JSON); 400/415 problem+json on a bad body;
 *                              401/403 problem+json without a token holding the ops scope
 * GET  /admin/reconcile/last   200 -> the last ReconcileReport; 404 problem+json before the first run
 * ```
 *
 * The report, as JSON:
 *
 * ```json
 * {
 *   "service": "orders",
 *   "mode": "dry-run",                       // or "repair"
 *   "startedAt": "2026-12-05T00:10:00.000Z",
 *   "finishedAt": "2026-12-05T00:10:00.042Z",
 *   "durationMs": 42,
 *   "clean": false,                          // nothing found and nothing failed
 *   "totals": { "found": 1, "repaired": 0, "skipped": 0, "failed": 0 },
 *   "checks": [{
 *     "name": "pending-past-deadline",
 *     "description": "orders still PENDING after their deadline",
 *     "found": 1, "repaired": 0, "skipped": 0, "failed": 0,
 *     "error": "only when find() itself failed",
 *     "drifts": [{
 *       "subject": "0b7c…",                   // the record's id (an order id here)
 *       "detail": "PENDING (CHARGING) 61 s past its deadline",
 *       "outcome": "found",                   // found | repaired | skipped | failed
 *       "error": "only when outcome is failed"
 *     }]
 *   }]
 * }
 * ```
 *
 * **Checks that span services.** Each service owns its database, so no query can join two of them. A check lives in
 * the service that owns the repair, reads its own rows, and asks the other service for its side through the read API
 * that service already serves to callers with a service token (gRPC `GetOrder`, `GetReservation`, `GetPayment`, the
 * receipts endpoint). The repair then goes through the owner's normal path: its own transaction and outbox, or a
 * command on the bus that the owning consumer handles with its inbox; so a repair is deduplicated, traced and
 * replayable like any other change, and a second repair of the same drift changes nothing. A record that is only
 * briefly inconsistent while a saga is in flight is not a drift: checks look only at records older than a grace
 * period.
 *
 * @example A dry run, then a repair
 * ```ts
 * import { defineCheck, Reconciler } from "./mod.ts";
 * const receipts = new Set<string>(["o-1"]);
 * const confirmed = ["o-1", "o-2"];
 * const missingReceipt = defineCheck({
 *   name: "confirmed-without-receipt",
 *   description: "confirmed orders with no receipt",
 *   find: () =>
 *     Promise.resolve(confirmed.filter((id) => !receipts.has(id)).map((id) => ({ subject: id, detail: "no receipt" }))),
 *   repair: (drift) => {
 *     if (receipts.has(drift.subject)) return Promise.resolve("skipped" as const);
 *     receipts.add(drift.subject);
 *     return Promise.resolve("repaired" as const);
 *   },
 * });
 * await using reconciler = new Reconciler({ name: "orders", checks: [missingReceipt] });
 * console.assert((await reconciler.run()).totals.found === 1);
 * console.assert((await reconciler.run({ repair: true })).totals.repaired === 1);
 * console.assert((await reconciler.run()).clean);
 * ```
 * @module
 */
export * from "./check.ts";
export * from "./report.ts";
export * from "./reconciler.ts";
export * from "./reconciler_for.ts";
export * from "./endpoints.ts";
