/**
 * A consumer in a child process, for the conformance suite's crash case: the child subscribes with a factory taken
 * from a test module and reports every message it starts and finishes handling on stdout, until it is killed. The
 * parent side ({@linkcode startConsumerProcess}) collects the reports and kills the child with SIGKILL, so nothing
 * gets the chance to close, acknowledge or commit gracefully.
 *
 * Run by hand: `deno run -A consumer_process.ts '<ConsumerProcessSpec as JSON>'`.
 *
 * @module
 */
import type { ConformanceTarget } from "./conformance.ts";
import { WaitTimeoutError, within } from "../../testing/mod.ts";

/**
 * What the child is asked to do.
 *
 * @example Four slow handlers on one group
 * ```ts
 * import type { ConsumerProcessSpec } from "./consumer_process.ts";
 * const spec: ConsumerProcessSpec = {
 *   module: new URL("../adapters/kafka/kafkajs_test.ts", import.meta.url).href,
 *   export: "kafkaTarget",
 *   topic: "orders.events",
 *   group: "payments",
 *   concurrency: 4,
 *   handleMs: 20,
 * };
 * const argument = JSON.stringify(spec); // what `deno run -A consumer_process.ts` takes
 * ```
 */
export interface ConsumerProcessSpec {
  /** Module URL holding the factory. */
  module: string;
  /** Name of the factory export; called without arguments, it returns a {@linkcode ConformanceTarget}. */
  export: string;
  topic: string;
  group: string;
  concurrency: number;
  /** How long each handler takes, so that a kill finds handlers running. */
  handleMs: number;
}

/**
 * The child's handle in the parent: ids it reported as started and as handled (the handler resolved; whether the
 * adapter acknowledged or committed them is what the crash case finds out).
 *
 * @example Messages handled but lost by a crash
 * ```ts
 * import type { ConsumerProcessHandle } from "./consumer_process.ts";
 * async function crashAfter(child: ConsumerProcessHandle, n: number): Promise<string[]> {
 *   await child.until(() => child.handled.size >= n, 20_000, `${n} handled messages`);
 *   await child.kill();
 *   return [...child.started].filter((id) => !child.handled.has(id)); // started, never finished
 * }
 * ```
 */
export interface ConsumerProcessHandle {
  readonly started: ReadonlySet<string>;
  readonly handled: ReadonlySet<string>;
  /** Resolves once `condition` holds; rejects when the child exits first or after `timeoutMs`. */
  until(condition: () => boolean, timeoutMs: number, what: string): Promise<void>;
  /** Kills the child with SIGKILL and waits until it exited and its output was read; idempotent. */
  kill(): Promise<void>;
}

/** Prefix of report lines, so whatever else the imported module prints is not mistaken for one. */
const REPORT = "conformance-consumer ";

type Report = { event: "ready" } | { event: "started" | "handled"; id: string };

/**
 * Starts a consumer process (`deno run -A` of this module) for `spec`.
 *
 * @example Kill a consumer while it handles messages
 * ```ts ignore
 * import { startConsumerProcess } from "./consumer_process.ts";
 * const child = startConsumerProcess({
 *   module: new URL("../adapters/kafka/kafkajs_test.ts", import.meta.url).href,
 *   export: "kafkaTarget",
 *   topic: "orders.events",
 *   group: "payments",
 *   concurrency: 4,
 *   handleMs: 20,
 * });
 * await child.until(() => child.handled.size >= 10, 20_000, "10 handled messages");
 * await child.kill();
 * ```
 */
export function startConsumerProcess(spec: ConsumerProcessSpec): ConsumerProcessHandle {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.url, JSON.stringify(spec)],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const started = new Set<string>();
  const handled = new Set<string>();
  let errors = "";
  let check: (() => void) | undefined;
  let exited = false;

  const readReports = (async () => {
    let rest = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith(REPORT)) continue;
        const report = JSON.parse(line.slice(REPORT.length)) as Report;
        if (report.event === "started") started.add(report.id);
        else if (report.event === "handled") handled.add(report.id);
      }
      check?.();
    }
  })();
  const readErrors = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) errors = (errors + chunk).slice(-4000);
  })();
  const status = child.status.then((s) => {
    exited = true;
    check?.();
    return s;
  });
  let killed: Promise<void> | undefined;

  return {
    started,
    handled,
    async until(condition, timeoutMs, what) {
      if (condition()) return;
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      check = () => {
        if (condition()) resolve();
        else if (exited) reject(new Error(`the consumer process exited before ${what}; its stderr:\n${errors}`));
      };
      check();
      try {
        await within(promise, timeoutMs, what).catch((err) => {
          // Named when the bound passes, so the message carries what the process said by then.
          throw err instanceof WaitTimeoutError
            ? new WaitTimeoutError(`${what}; its stderr:\n${errors}`, timeoutMs)
            : err;
        });
      } finally {
        check = undefined;
      }
    },
    kill() {
      killed ??= (async () => {
        if (!exited) child.kill("SIGKILL");
        await within(
          Promise.all([status, readReports, readErrors]),
          10_000,
          "the killed consumer process to exit and close its output",
        );
      })();
      return killed;
    },
  };
}

async function runConsumer(spec: ConsumerProcessSpec): Promise<void> {
  const mod = await import(spec.module);
  const factory = mod[spec.export];
  if (typeof factory !== "function") {
    throw new TypeError(
      `Cannot run a consumer process as ${spec.module} has no function export "${spec.export}": current value is ${typeof factory}`,
    );
  }
  const target: ConformanceTarget = await factory();
  // console.log writes synchronously, so every report is out before a SIGKILL can land.
  const report = (r: Report) => console.log(REPORT + JSON.stringify(r));
  await target.subscriber.subscribe(spec.topic, async (msg) => {
    report({ event: "started", id: msg.id });
    await new Promise((resolve) => setTimeout(resolve, spec.handleMs));
    report({ event: "handled", id: msg.id });
  }, { group: spec.group, concurrency: spec.concurrency });
  report({ event: "ready" });
}

// No top-level await: the factory's module imports the suite, which imports this module, and a module still
// awaiting at top level would deadlock that cycle.
if (import.meta.main) {
  runConsumer(JSON.parse(Deno.args[0])).catch((err) => {
    console.error(err);
    Deno.exit(1);
  });
}
