/**
 * The pure parts of the load benchmarks (`bench_load.ts`, `bench_outbox.ts`): an open-loop schedule that sends at a
 * constant rate whatever the answers do, latencies counted from each request's scheduled send time (so a generator
 * or server that falls behind shows as latency instead of hiding it: no coordinated omission), percentiles, and the
 * rule that ends a rate ladder.
 */

/** Time source of the scheduler: real (`realClock`) in the benches, fake in their tests. */
export interface Clock {
  /** Milliseconds on a monotonic scale. */
  now(): number;
  /** Resolves once `ms` have passed (possibly later: a busy event loop wakes late). */
  sleep(ms: number): Promise<void>;
}

/** `performance.now()` and `setTimeout`. */
export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

/** One request of an open-loop run. */
export interface Sent {
  /** Its index in the schedule. */
  index: number;
  /** When the schedule said to send it. */
  scheduledAt: number;
  /** When it was actually sent (later than `scheduledAt` when the generator fell behind). */
  sentAt: number;
  /** From `scheduledAt` to the answer: the latency a user arriving on time would see. */
  latencyMs: number;
  /** False when `send` threw or answered false. */
  ok: boolean;
}

/** Options for {@linkcode runOpenLoop}. */
export interface OpenLoopOptions {
  /** Requests per second. */
  ratePerSec: number;
  /** Length of the sending phase; `ratePerSec * durationMs / 1000` requests are scheduled. */
  durationMs: number;
  /** Sends request `index`; resolves true when it was accepted. Must bound its own wait (a timeout). */
  send: (index: number) => Promise<boolean>;
  /** @default {realClock} */
  clock?: Clock;
}

/**
 * Sends `ratePerSec` requests a second for `durationMs`, each at its scheduled time `start + index / rate` (or as
 * soon as the generator gets there, when it is late), never waiting for earlier answers; resolves when every answer
 * is in, with each request's latency counted from its scheduled time.
 */
export async function runOpenLoop(options: OpenLoopOptions): Promise<Sent[]> {
  const { ratePerSec, durationMs, send } = options;
  if (!(ratePerSec > 0)) throw new RangeError(`Cannot run an open loop as ratePerSec is not positive: ${ratePerSec}`);
  const clock = options.clock ?? realClock;
  const count = Math.round(ratePerSec * durationMs / 1000);
  const interval = 1000 / ratePerSec;
  const start = clock.now();
  const answers: Promise<Sent>[] = [];
  for (let index = 0; index < count;) {
    const now = clock.now();
    const due = start + index * interval;
    if (due > now) {
      await clock.sleep(due - now);
      continue;
    }
    // Everything due by now goes out at once: a late wake-up sends the backlog instead of stretching the schedule.
    for (; index < count && start + index * interval <= now; index++) {
      const scheduledAt = start + index * interval;
      const sentAt = clock.now();
      const i = index;
      answers.push(
        send(i).then((ok) => ok, () => false).then((ok) => ({
          index: i,
          scheduledAt,
          sentAt,
          latencyMs: clock.now() - scheduledAt,
          ok,
        })),
      );
    }
  }
  return await Promise.all(answers);
}

/** The `p` quantile (0..1) of `sorted` (ascending), nearest rank; NaN when empty. */
export function quantile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/** What a step of a rate ladder found, as far as the stopping rule cares. */
export interface StepOutcome {
  p99AcceptMs: number;
  /** Requests not accepted (error answers, timeouts, refused connections). */
  errors: number;
  /** Accepted orders whose saga was not terminal when the step's drain time ran out. */
  unfinished: number;
}

/**
 * Why the ladder stops after this step, or `undefined` to go on: p99 accept latency above `p99LimitMs`, any error,
 * or sagas the system could not finish (a backlog that would spill into the next step's figures).
 */
export function stopReason(step: StepOutcome, p99LimitMs = 50): string | undefined {
  const reasons = [];
  if (step.errors > 0) reasons.push(`${step.errors} requests failed`);
  if (step.p99AcceptMs > p99LimitMs) reasons.push(`p99 accept ${step.p99AcceptMs.toFixed(1)} ms > ${p99LimitMs} ms`);
  if (step.unfinished > 0) reasons.push(`${step.unfinished} sagas unfinished after the drain time`);
  return reasons.length > 0 ? reasons.join("; ") : undefined;
}
