import type { Service } from "../service/mod.ts";
import type { Check } from "./check.ts";
import { Reconciler } from "./reconciler.ts";

/**
 * Options of {@linkcode reconcilerFor}.
 *
 * @example Repair every ten minutes, two repairs at a time
 * ```ts
 * import type { ReconcilerForOptions } from "./reconciler_for.ts";
 * const options: ReconcilerForOptions = { intervalMs: 600_000, concurrency: 2 };
 * ```
 */
export interface ReconcilerForOptions {
  /** Pause between scheduled runs in ms; 0 runs only on demand. @default {0} */
  intervalMs?: number;
  /** Whether scheduled runs repair (runs on demand say for themselves). @default {true} */
  repair?: boolean;
  /** Repairs of one check running at once. @default {4} */
  concurrency?: number;
}

/**
 * A {@linkcode Reconciler} for `svc`'s checks, named after it, logging to `svc.logger` and counted on its
 * `/metrics`; scheduled from start (when `intervalMs` > 0) and closed at stop (a run in flight is cancelled and
 * waited for). Mount {@linkcode reconcileEndpoints} on the service's router to run it on demand.
 *
 * @example
 * ```ts
 * import { Service } from "../service/mod.ts";
 * import { reconcilerFor } from "./mod.ts";
 * const svc = new Service({ name: "orders" });
 * const reconciler = reconcilerFor(svc, [], { intervalMs: 60_000 });
 * console.assert(reconciler.name === "orders");
 * await reconciler.close();
 * ```
 */
export function reconcilerFor(
  svc: Service,
  // deno-lint-ignore no-explicit-any -- each check has its own drift type
  checks: readonly Check<any>[],
  options: ReconcilerForOptions = {},
): Reconciler {
  const { intervalMs = 0, repair = true, concurrency } = options;
  if (!(Number.isFinite(intervalMs) && intervalMs >= 0)) {
    throw new RangeError(
      `Cannot reconcile service "${svc.name}" as intervalMs is not a number >= 0: current value is ${intervalMs}`,
    );
  }
  const reconciler = new Reconciler({
    name: svc.name,
    checks,
    logger: svc.logger,
    registry: svc.registry,
    concurrency,
  });
  svc.onStart("reconciler", () => {
    if (intervalMs > 0) reconciler.schedule({ intervalMs, repair });
    return Promise.resolve();
  });
  svc.onStop("reconciler", () => reconciler.close());
  return reconciler;
}
