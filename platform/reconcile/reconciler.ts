import { Counter, Gauge, type Registry } from "prom-client";
import { delay, Group } from "../async/mod.ts";
import { createLogger, type Logger } from "../log/mod.ts";
import type { Check, Drift } from "./check.ts";
import type { CheckReport, DriftReport, ReconcileReport } from "./report.ts";

/**
 * Where a run stands, given to `onProgress`: the check being worked on (`index` of `of`), its phase, and within
 * `repairing` how many of its drifts are done.
 *
 * @example
 * ```ts
 * import type { ReconcileProgress } from "./reconciler.ts";
 * const p: ReconcileProgress = { check: "pending-past-deadline", index: 0, of: 3, phase: "repairing", done: 2, total: 5 };
 * ```
 */
export interface ReconcileProgress {
  check: string;
  index: number;
  of: number;
  phase: "finding" | "repairing" | "done";
  done: number;
  total: number;
}

/**
 * Options of {@linkcode Reconciler.run}.
 *
 * @example A repair run with a deadline, printing progress
 * ```ts
 * import type { RunOptions } from "./reconciler.ts";
 * const options: RunOptions = {
 *   repair: true,
 *   signal: AbortSignal.timeout(30_000),
 *   onProgress: (p) => console.log(p.check, p.phase, `${p.done}/${p.total}`),
 * };
 * ```
 */
export interface RunOptions {
  /** Repair what is found; otherwise only report it (dry run). @default {false} */
  repair?: boolean;
  /** Cancels the run: no new repair starts and `run()` rejects with the signal's reason. @default {undefined} */
  signal?: AbortSignal;
  /** Called as the run advances; must not throw. @default {undefined} */
  onProgress?: (progress: ReconcileProgress) => void;
}

/**
 * Options of {@linkcode Reconciler}.
 *
 * @example
 * ```ts
 * import type { ReconcilerOptions } from "./reconciler.ts";
 * const options: ReconcilerOptions = { name: "orders", checks: [], concurrency: 8 };
 * ```
 */
export interface ReconcilerOptions {
  /** Names the reconciler in reports and logs: usually the service that owns the checks. */
  name: string;
  // deno-lint-ignore no-explicit-any -- each check has its own drift type; a repair only ever gets its own check's
  checks: readonly Check<any>[];
  /** @default {createLogger(name)} */
  logger?: Logger;
  /** Repairs of one check running at once. @default {4} */
  concurrency?: number;
  /**
   * Where to count results (`reconcile_runs_total{mode,result}`, `reconcile_drifts_total{check,outcome}`,
   * `reconcile_last_run_timestamp_seconds`, `reconcile_last_run_drifts`); none when unset. @default {undefined}
   */
  registry?: Registry;
  /** Waits between scheduled runs (tests pass one they control). @default {delay} */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** The wall clock, for reports' timestamps. @default {() => new Date()} */
  now?: () => Date;
}

/**
 * Options of {@linkcode Reconciler.schedule}.
 *
 * @example Check every five minutes, report only
 * ```ts
 * import type { ScheduleOptions } from "./reconciler.ts";
 * const options: ScheduleOptions = { intervalMs: 300_000, repair: false };
 * ```
 */
export interface ScheduleOptions {
  /** Pause between the end of one scheduled run and the start of the next, in ms. */
  intervalMs: number;
  /** Whether scheduled runs repair. @default {true} */
  repair?: boolean;
}

class Metrics {
  readonly runs: Counter<"mode" | "result">;
  readonly drifts: Counter<"check" | "outcome">;
  readonly lastRun: Gauge;
  readonly lastDrifts: Gauge<"check">;
  constructor(registry: Registry) {
    const registers = [registry];
    this.runs = new Counter({
      name: "reconcile_runs_total",
      help: "Reconciliation runs, by mode and result (clean, drift, failed).",
      labelNames: ["mode", "result"] as const,
      registers,
    });
    this.drifts = new Counter({
      name: "reconcile_drifts_total",
      help: "Drifts met by reconciliation runs, by check and outcome (found, repaired, skipped, failed).",
      labelNames: ["check", "outcome"] as const,
      registers,
    });
    this.lastRun = new Gauge({
      name: "reconcile_last_run_timestamp_seconds",
      help: "When the last reconciliation run finished (Unix seconds).",
      registers,
    });
    this.lastDrifts = new Gauge({
      name: "reconcile_last_run_drifts",
      help: "Drifts the last reconciliation run found, by check.",
      labelNames: ["check"] as const,
      registers,
    });
  }
}

/**
 * Runs a service's reconciliation checks: on demand with {@linkcode run} (dry run or repair) and on a schedule with
 * {@linkcode schedule}. Runs never overlap: a run asked for while another is going waits for it, and a scheduled run
 * is due `intervalMs` after the previous one ended. Checks run one after another; the repairs of one check run
 * `concurrency` at a time, and a repair that throws marks its drift `failed` without stopping the others (a `find()`
 * that throws marks its check failed without stopping the other checks). Every run is logged (each repair, and a
 * summary line: warn when it found drift, debug when clean) and, given a `registry`, counted.
 *
 * @example Find and repair negative stock
 * ```ts
 * import { defineCheck, Reconciler } from "./mod.ts";
 * const stock = new Map([["kettle", -2], ["mug", 4]]);
 * const negative = defineCheck({
 *   name: "negative-stock",
 *   description: "products whose stock is below zero",
 *   find: () =>
 *     Promise.resolve([...stock].filter(([, n]) => n < 0).map(([sku, n]) => ({ subject: sku, detail: `stock ${n}` }))),
 *   repair: (drift) => {
 *     if ((stock.get(drift.subject) ?? 0) >= 0) return Promise.resolve("skipped" as const);
 *     stock.set(drift.subject, 0);
 *     return Promise.resolve("repaired" as const);
 *   },
 * });
 * await using reconciler = new Reconciler({ name: "inventory", checks: [negative], logger: undefined });
 * const dry = await reconciler.run();
 * console.assert(dry.totals.found === 1 && stock.get("kettle") === -2);
 * const fixed = await reconciler.run({ repair: true });
 * console.assert(fixed.totals.repaired === 1 && stock.get("kettle") === 0);
 * console.assert((await reconciler.run()).clean);
 * ```
 */
export class Reconciler {
  readonly name: string;
  // deno-lint-ignore no-explicit-any -- see ReconcilerOptions.checks
  readonly #checks: readonly Check<any>[];
  readonly #logger: Logger;
  readonly #concurrency: number;
  readonly #metrics?: Metrics;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly #now: () => Date;
  readonly #closing = new AbortController();
  #queue: Promise<unknown> = Promise.resolve();
  #running = 0;
  #last?: ReconcileReport;
  #loop?: Promise<void>;
  #closed?: Promise<void>;

  constructor(options: ReconcilerOptions) {
    const { concurrency = 4 } = options;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new RangeError(
        `Cannot create a reconciler as concurrency is not an integer >= 1: current value is ${concurrency}`,
      );
    }
    const names = new Set<string>();
    for (const check of options.checks) {
      if (names.has(check.name)) {
        throw new TypeError(`Cannot create a reconciler with two checks named ${JSON.stringify(check.name)}`);
      }
      names.add(check.name);
    }
    this.name = options.name;
    this.#checks = options.checks;
    this.#logger = options.logger ?? createLogger(options.name);
    this.#concurrency = concurrency;
    this.#metrics = options.registry && new Metrics(options.registry);
    this.#sleep = options.sleep ?? delay;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * The names and descriptions of the checks, in the order they run.
   *
   * @example
   * ```ts
   * import { Reconciler } from "./mod.ts";
   * await using r = new Reconciler({ name: "orders", checks: [] });
   * console.assert(r.checks.length === 0);
   * ```
   */
  get checks(): { name: string; description: string }[] {
    return this.#checks.map((c) => ({ name: c.name, description: c.description }));
  }

  /**
   * The report of the last run that finished, or `undefined` before the first.
   *
   * @example
   * ```ts
   * import { Reconciler } from "./mod.ts";
   * await using r = new Reconciler({ name: "orders", checks: [] });
   * await r.run();
   * console.assert(r.last?.clean === true);
   * ```
   */
  get last(): ReconcileReport | undefined {
    return this.#last;
  }

  /**
   * Whether a run is going or waiting for one.
   *
   * @example
   * ```ts
   * import { Reconciler } from "./mod.ts";
   * await using r = new Reconciler({ name: "orders", checks: [] });
   * console.assert(!r.running);
   * ```
   */
  get running(): boolean {
    return this.#running > 0;
  }

  /**
   * Runs every check once, after any run already going: a dry run by default, repairing with `repair: true`.
   * Rejects with the signal's reason when `signal` (or {@linkcode close}) cancels it, and with a `TypeError` once
   * closed.
   *
   * @example
   * ```ts
   * import { Reconciler } from "./mod.ts";
   * await using r = new Reconciler({ name: "orders", checks: [] });
   * const report = await r.run({ repair: true });
   * console.assert(report.mode === "repair");
   * ```
   */
  run(options: RunOptions = {}): Promise<ReconcileReport> {
    if (this.#closing.signal.aborted) {
      return Promise.reject(new TypeError(`Cannot run reconciler "${this.name}": it is closed`));
    }
    const signal = options.signal ? AbortSignal.any([options.signal, this.#closing.signal]) : this.#closing.signal;
    this.#running++;
    const turn = this.#queue.then(() => this.#runNow(options, signal)).finally(() => this.#running--);
    this.#queue = turn.catch(() => {});
    return turn;
  }

  /**
   * Runs the checks every `intervalMs` (first after one interval) until {@linkcode close}. A failed run is logged and
   * the next one comes at its time. Throws when already scheduled or closed, or when `intervalMs` is not positive.
   *
   * @example
   * ```ts
   * import { Reconciler } from "./mod.ts";
   * await using r = new Reconciler({ name: "orders", checks: [] });
   * r.schedule({ intervalMs: 60_000 });
   * ```
   */
  schedule(options: ScheduleOptions): void {
    const { intervalMs, repair = true } = options;
    if (!(typeof intervalMs === "number" && Number.isFinite(intervalMs) && intervalMs > 0)) {
      throw new RangeError(
        `Cannot schedule reconciler "${this.name}" as intervalMs is not a positive number: current value is ${intervalMs}`,
      );
    }
    if (this.#closing.signal.aborted) throw new TypeError(`Cannot schedule reconciler "${this.name}": it is closed`);
    if (this.#loop) throw new TypeError(`Cannot schedule reconciler "${this.name}": it is already scheduled`);
    const closing = this.#closing.signal;
    this.#loop = (async () => {
      while (!closing.aborted) {
        try {
          await this.#sleep(intervalMs, closing);
        } catch {
          break;
        }
        if (closing.aborted) break;
        try {
          await this.run({ repair });
        } catch (err) {
          if (!closing.aborted) this.#logger.warn("scheduled reconciliation failed", { reconciler: this.name, err });
        }
      }
    })();
  }

  /**
   * Stops the schedule, cancels the run going (its repairs in flight get an aborted signal) and waits for it to
   * end; idempotent.
   *
   * @example
   * ```ts
   * import { Reconciler } from "./mod.ts";
   * const r = new Reconciler({ name: "orders", checks: [] });
   * await r.close();
   * await r.close();
   * ```
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort(new DOMException(`reconciler "${this.name}" closed`, "AbortError"));
      await this.#loop;
      await this.#queue;
    })();
    return this.#closed;
  }

  /** Same as {@linkcode close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #runNow(options: RunOptions, signal: AbortSignal): Promise<ReconcileReport> {
    signal.throwIfAborted();
    const repair = options.repair ?? false;
    const mode = repair ? "repair" : "dry-run";
    const started = this.#now();
    const t0 = performance.now();
    const checks: CheckReport[] = [];
    try {
      for (const [index, check] of this.#checks.entries()) {
        checks.push(await this.#runCheck(check, index, repair, signal, options.onProgress));
      }
    } catch (err) {
      this.#metrics?.runs.inc({ mode, result: "failed" });
      throw err;
    }
    const totals = { found: 0, repaired: 0, skipped: 0, failed: 0 };
    for (const c of checks) {
      totals.found += c.found;
      totals.repaired += c.repaired;
      totals.skipped += c.skipped;
      totals.failed += c.failed + (c.error === undefined ? 0 : 1);
    }
    const report: ReconcileReport = {
      service: this.name,
      mode,
      startedAt: started.toISOString(),
      finishedAt: this.#now().toISOString(),
      durationMs: Math.round(performance.now() - t0),
      clean: totals.found === 0 && totals.failed === 0,
      totals,
      checks,
    };
    this.#last = report;
    this.#count(report);
    const summary = { reconciler: this.name, mode, ...totals, ms: report.durationMs };
    if (report.clean) this.#logger.debug("reconciliation clean", summary);
    else this.#logger.warn("reconciliation found drift", summary);
    return report;
  }

  async #runCheck(
    check: Check<Drift>,
    index: number,
    repair: boolean,
    signal: AbortSignal,
    onProgress: RunOptions["onProgress"],
  ): Promise<CheckReport> {
    const of = this.#checks.length;
    const part: CheckReport = {
      name: check.name,
      description: check.description,
      found: 0,
      repaired: 0,
      skipped: 0,
      failed: 0,
      drifts: [],
    };
    onProgress?.({ check: check.name, index, of, phase: "finding", done: 0, total: 0 });
    let drifts: Drift[];
    try {
      drifts = await check.find(signal);
    } catch (err) {
      signal.throwIfAborted();
      part.error = messageOf(err);
      this.#logger.warn("reconciliation check failed", { reconciler: this.name, check: check.name, err });
      onProgress?.({ check: check.name, index, of, phase: "done", done: 0, total: 0 });
      return part;
    }
    part.found = drifts.length;
    part.drifts = drifts.map((d): DriftReport => ({ subject: d.subject, detail: d.detail, outcome: "found" }));
    if (repair && drifts.length > 0) {
      let done = 0;
      const total = drifts.length;
      onProgress?.({ check: check.name, index, of, phase: "repairing", done, total });
      // Each task catches its own failure, so the group fails only when the run is cancelled; wait() then returns once
      // every repair in flight has.
      const group = new Group({ limit: this.#concurrency, signal });
      for (const [i, drift] of drifts.entries()) {
        group.go(async (taskSignal) => {
          const line = part.drifts[i];
          try {
            line.outcome = await check.repair(drift, taskSignal);
            if (line.outcome === "repaired") {
              this.#logger.info("drift repaired", { reconciler: this.name, check: check.name, subject: line.subject });
            }
          } catch (err) {
            taskSignal.throwIfAborted();
            line.outcome = "failed";
            line.error = messageOf(err);
            this.#logger.warn("drift repair failed", {
              reconciler: this.name,
              check: check.name,
              subject: line.subject,
              err,
            });
          }
          onProgress?.({ check: check.name, index, of, phase: "repairing", done: ++done, total });
        });
      }
      await group.wait();
      for (const line of part.drifts) {
        if (line.outcome === "repaired") part.repaired++;
        else if (line.outcome === "skipped") part.skipped++;
        else if (line.outcome === "failed") part.failed++;
      }
    }
    onProgress?.({ check: check.name, index, of, phase: "done", done: part.found, total: part.found });
    return part;
  }

  #count(report: ReconcileReport): void {
    const m = this.#metrics;
    if (!m) return;
    m.runs.inc({ mode: report.mode, result: report.clean ? "clean" : "drift" });
    m.lastRun.set(Date.parse(report.finishedAt) / 1000);
    for (const c of report.checks) {
      m.lastDrifts.set({ check: c.name }, c.found);
      for (const d of c.drifts) m.drifts.inc({ check: c.name, outcome: d.outcome });
    }
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
