/**
 * Per-key lanes: jobs pushed on the same lane run one at a time, in push order; jobs on different lanes, and jobs
 * without a lane, run concurrently (the job runner bounds how many with the subscription's limiter). A lane exists
 * only while it has jobs. `run` must not reject.
 *
 * @example Two jobs of one key run one after the other; a keyless one runs beside them
 * ```ts
 * import { Lanes } from "./lanes.ts";
 * const order: string[] = [];
 * const lanes = new Lanes<string>(async (job) => {
 *   await Promise.resolve();
 *   order.push(job);
 * });
 * lanes.push("order-1", "a");
 * lanes.push("order-1", "b");
 * lanes.push(undefined, "c");
 * ```
 */
export class Lanes<J> {
  readonly #queues = new Map<string, J[]>();
  readonly #run: (job: J) => Promise<void>;

  constructor(run: (job: J) => Promise<void>) {
    this.#run = run;
  }

  /** Lanes with jobs queued or running. */
  get size(): number {
    return this.#queues.size;
  }

  /** Runs `job` after the jobs already on `lane`, or at once when `lane` is `undefined`. */
  push(lane: string | undefined, job: J): void {
    if (lane === undefined) {
      void this.#run(job);
      return;
    }
    const queued = this.#queues.get(lane);
    if (queued) {
      queued.push(job);
      return;
    }
    const jobs = [job];
    this.#queues.set(lane, jobs);
    void this.#drain(lane, jobs);
  }

  async #drain(lane: string, jobs: J[]): Promise<void> {
    while (jobs.length > 0) {
      await this.#run(jobs[0]);
      jobs.shift();
    }
    this.#queues.delete(lane);
  }
}
