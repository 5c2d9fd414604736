import { delay } from "@trellis/platform/async";
import type { Database } from "@trellis/platform/db";
import type { Logger } from "@trellis/platform/log";
import { type ExpiredOrder, expireOverdue } from "./store.ts";

/** Options for {@linkcode startDeadlineSweeper}. */
export interface DeadlineSweeperOptions {
  /** Pause between sweeps, in ms (a sweep that hit `batchSize` is followed by the next at once). */
  intervalMs: number;
  logger: Logger;
  /** Most orders one sweep cancels. @default {100} */
  batchSize?: number;
  /** Called for each order cancelled, after its transaction committed (e.g. to count it). @default {() => {}} */
  onExpired?: (order: ExpiredOrder) => void;
}

/** A running deadline sweeper. */
export interface DeadlineSweeper {
  /** Stops after the sweep in flight; idempotent. */
  stop(): Promise<void>;
}

/**
 * Every `intervalMs`, cancels and compensates the orders still PENDING past their deadline ({@linkcode expireOverdue}),
 * so no order stays PENDING forever whatever became of the messages of its saga. A failed sweep (the database down)
 * is logged and tried again at the next interval.
 *
 * @example
 * ```ts ignore
 * const sweeper = startDeadlineSweeper(db, { intervalMs: 5_000, log });
 * await sweeper.stop();
 * ```
 */
export function startDeadlineSweeper(db: Database, options: DeadlineSweeperOptions): DeadlineSweeper {
  if (!(options.intervalMs > 0)) {
    throw new RangeError(
      `Cannot start a deadline sweeper as intervalMs is not a positive number: current value is ${options.intervalMs}`,
    );
  }
  const batchSize = options.batchSize ?? 100;
  const stopping = new AbortController();
  const loop = (async () => {
    while (!stopping.signal.aborted) {
      let full = false;
      try {
        const expired = await expireOverdue(db, batchSize);
        for (const e of expired) {
          options.logger.warn("order deadline exceeded: cancelled", { ...e });
          options.onExpired?.(e);
        }
        full = expired.length === batchSize;
      } catch (err) {
        if (stopping.signal.aborted) break;
        options.logger.warn("deadline sweep failed; retrying at the next interval", { err });
      }
      if (!full) await delay(options.intervalMs, stopping.signal).catch(() => {});
    }
  })();
  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        stopping.abort();
        await loop;
      })();
      return stopped;
    },
  };
}
