/**
 * The process supervisor of `deno task up`: runs the six services as child processes and restarts any that exits
 * while it is not stopping, as Kubernetes or systemd would, with a backoff of 1 s doubling to 30 s (back to 1 s once a
 * process has run for 60 s). Each restart is one line in `<log dir>/supervisor.log` and in the service's own log.
 * SIGTERM or SIGINT stops the services edge inwards (gateway; orders and notifications; inventory and payments;
 * auth), each with SIGTERM and a grace period before SIGKILL, then exits 0.
 *
 * Environment: `TRELLIS_RUN_DIR` [.trellis/run] holds `supervisor.pid` and `<service>.pid` of each running child;
 * `TRELLIS_LOG_DIR` [.trellis/logs] holds the logs; `TRELLIS_STOP_GRACE_S` [10] is the grace period per service; the
 * services' own variables (`AUTH_PORT`, `DATABASE_URL`, ...) pass through to them.
 *
 * @example Run it the way scripts/up.sh does
 * ```sh
 * setsid deno run -A scripts/supervise.ts </dev/null >>.trellis/logs/supervisor.log 2>&1 &
 * ```
 *
 * @module
 */
import { loadConfig } from "../services/shared/config.ts";
import { startTraceReceiver, type TraceReceiver } from "@trellis/platform/telemetry/receiver";

/** The services in start order; each start wave waits until the previous one answers /readyz. */
export const START_WAVES: readonly (readonly string[])[] = [
  ["auth"],
  ["inventory", "payments", "orders", "notifications", "gateway"],
];

/** Callers go before the services they call, as `deno task down` always did. */
export const STOP_WAVES: readonly (readonly string[])[] = [
  ["gateway"],
  ["orders", "notifications"],
  ["inventory", "payments"],
  ["auth"],
];

/** Restart backoff ({@linkcode restartDelay}). */
export interface BackoffOptions {
  /** First delay, and the delay after a run long enough to reset. @default {1000} */
  initialMs?: number;
  /** Upper bound of the doubling. @default {30000} */
  maxMs?: number;
  /** A process that ran at least this long before exiting counts as healthy: its next delay is `initialMs`. @default {60000} */
  resetAfterMs?: number;
}

/**
 * How long to wait before restarting a process that exited after running `ranMs`, given the delay used before its
 * previous restart (`undefined` if it has not been restarted yet or its last run reset the backoff).
 *
 * @example Doubling up to the cap, reset by a long run
 * ```ts
 * import { restartDelay } from "./supervise.ts";
 * restartDelay(undefined, 200); // 1000
 * restartDelay(1000, 200); // 2000
 * restartDelay(16_000, 200); // 30000
 * restartDelay(30_000, 61_000); // 1000
 * ```
 */
export function restartDelay(previousMs: number | undefined, ranMs: number, options: BackoffOptions = {}): number {
  const { initialMs = 1_000, maxMs = 30_000, resetAfterMs = 60_000 } = options;
  if (!(ranMs >= 0)) {
    throw new RangeError(`Cannot compute a restart delay as ranMs is not a duration: current value is ${ranMs}`);
  }
  if (previousMs === undefined || ranMs >= resetAfterMs) return initialMs;
  return Math.min(previousMs * 2, maxMs);
}

/** Options for {@linkcode Supervisor}. */
export interface SupervisorOptions {
  /** Repository root; services run from here as `services/<name>/main.ts`. */
  root: string;
  /** Where the pid files go. */
  runDir: string;
  /** Where `supervisor.log` and `<service>.log` go. */
  logDir: string;
  /** `/readyz` base URL of each service, used between start waves; a service without one is not waited for. */
  urls: Record<string, string>;
  /** Services to start, wave after wave. @default {START_WAVES} */
  startWaves?: readonly (readonly string[])[];
  /** Order to stop them in, wave after wave; services in no wave stop last. @default {STOP_WAVES} */
  stopWaves?: readonly (readonly string[])[];
  /** SIGTERM-to-SIGKILL grace per service. @default {10000} */
  stopGraceMs?: number;
  /** How long a start wave may take to become ready before the next starts anyway. @default {90000} */
  readyTimeoutMs?: number;
  backoff?: BackoffOptions;
  /**
   * Environment added to every service's own (which it inherits); each service also gets `OTEL_SERVICE_NAME` set to
   * its name, so its spans name their process. @default {{}}
   */
  env?: Record<string, string>;
}

/** One supervised service: its current process, if any, and its restart history. */
interface Slot {
  name: string;
  child?: Deno.ChildProcess;
  startedAt: number;
  restarts: number;
  lastDelayMs?: number;
  timer?: ReturnType<typeof setTimeout>;
  /** Settles when the current child has exited and the supervisor has handled it. */
  exited?: Promise<void>;
}

/**
 * Runs services as children and restarts them when they exit ({@linkcode restartDelay}); see the module doc.
 *
 * @example Supervise the six services until SIGTERM
 * ```ts ignore
 * import { Supervisor } from "./supervise.ts";
 * const sup = new Supervisor({ root: ".", runDir: ".trellis/run", logDir: ".trellis/logs", urls: {} });
 * Deno.addSignalListener("SIGTERM", () => sup.stop().then(() => Deno.exit(0)));
 * await sup.start();
 * ```
 */
export class Supervisor {
  readonly #options: Required<Omit<SupervisorOptions, "backoff">> & { backoff: BackoffOptions };
  readonly #slots = new Map<string, Slot>();
  readonly #stopping = new AbortController();
  #stopped?: Promise<void>;

  constructor(options: SupervisorOptions) {
    this.#options = {
      stopGraceMs: 10_000,
      readyTimeoutMs: 90_000,
      backoff: {},
      startWaves: START_WAVES,
      stopWaves: STOP_WAVES,
      env: {},
      ...options,
    };
  }

  /** Starts the services wave by wave; resolves once the last wave is started (not necessarily ready). */
  async start(): Promise<void> {
    await Deno.mkdir(this.#options.runDir, { recursive: true });
    await Deno.mkdir(this.#options.logDir, { recursive: true });
    await Deno.writeTextFile(this.#pidFile("supervisor"), `${Deno.pid}\n`);
    await this.#log(`supervisor: started (pid ${Deno.pid}); restarts exited services with backoff`);
    for (const wave of this.#options.startWaves) {
      if (this.#stopping.signal.aborted) return;
      for (const name of wave) this.#spawn(this.#slot(name));
      await Promise.all(wave.map((name) => this.#waitReady(name)));
    }
  }

  /** Stops every service edge inwards (SIGTERM, then SIGKILL after the grace period); idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping.abort();
    await this.#log("supervisor: stopping services edge inwards");
    for (const slot of this.#slots.values()) clearTimeout(slot.timer);
    const listed = new Set(this.#options.stopWaves.flat());
    const rest = [...this.#slots.keys()].filter((name) => !listed.has(name));
    for (const wave of [...this.#options.stopWaves, rest]) {
      const slots = wave.map((name) => this.#slots.get(name)).filter((s) => s !== undefined);
      await Promise.all(slots.map((s) => this.#stopOne(s)));
    }
    await Deno.remove(this.#pidFile("supervisor")).catch(() => {});
    await this.#log("supervisor: every service stopped; exiting");
  }

  async #stopOne(slot: Slot): Promise<void> {
    const child = slot.child;
    if (child === undefined) return;
    const t0 = performance.now();
    signal(child, "SIGTERM");
    const timer = setTimeout(() => signal(child, "SIGKILL"), this.#options.stopGraceMs);
    const status = await child.status;
    clearTimeout(timer);
    await slot.exited;
    const ms = performance.now() - t0;
    await this.#log(`supervisor: stopped ${slot.name} (${describe(status)}) in ${(ms / 1000).toFixed(1)} s`, slot.name);
  }

  #slot(name: string): Slot {
    let slot = this.#slots.get(name);
    if (slot === undefined) {
      slot = { name, startedAt: 0, restarts: 0 };
      this.#slots.set(name, slot);
    }
    return slot;
  }

  #spawn(slot: Slot): void {
    const log = this.#logFile(slot.name);
    let child: Deno.ChildProcess;
    try {
      // The child writes its log itself (no pipe through us), so it keeps logging even if the supervisor dies.
      child = new Deno.Command("sh", {
        args: ["-c", 'exec "$0" run -A "$1" >>"$2" 2>&1', Deno.execPath(), `services/${slot.name}/main.ts`, log],
        cwd: this.#options.root,
        env: { ...this.#options.env, OTEL_SERVICE_NAME: slot.name },
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
    } catch (err) {
      slot.startedAt = performance.now();
      void this.#scheduleRestart(slot, `could not be spawned (${(err as Error).message})`);
      return;
    }
    slot.child = child;
    slot.startedAt = performance.now();
    const what = slot.restarts === 0 ? "started" : `restarted (restart ${slot.restarts})`;
    const logged = Deno.writeTextFile(this.#pidFile(slot.name), `${child.pid}\n`)
      .catch((err) => this.#log(`supervisor: cannot write ${slot.name}.pid: ${err.message}`))
      .then(() => this.#log(`supervisor: ${what} ${slot.name} (pid ${child.pid})`, slot.name));
    slot.exited = child.status.then(async (status) => {
      await logged;
      await this.#onExit(slot, child, status);
    });
  }

  async #onExit(slot: Slot, child: Deno.ChildProcess, status: Deno.CommandStatus): Promise<void> {
    if (slot.child === child) slot.child = undefined;
    // a pid file names a live child only: none while the service waits for its restart or after stop
    await Deno.remove(this.#pidFile(slot.name)).catch(() => {});
    if (this.#stopping.signal.aborted) return;
    await this.#scheduleRestart(slot, `(pid ${child.pid}) exited (${describe(status)})`);
  }

  async #scheduleRestart(slot: Slot, what: string): Promise<void> {
    const ranMs = performance.now() - slot.startedAt;
    const delay = restartDelay(slot.lastDelayMs, ranMs, this.#options.backoff);
    slot.lastDelayMs = delay;
    slot.restarts++;
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (!this.#stopping.signal.aborted) this.#spawn(slot);
    }, delay);
    await this.#log(
      `supervisor: ${slot.name} ${what} after ${(ranMs / 1000).toFixed(1)} s; ` +
        `restart ${slot.restarts} in ${delay % 1000 === 0 ? `${delay / 1000} s` : `${delay} ms`}`,
      slot.name,
    );
  }

  /** Polls `/readyz` until it answers 200, the child exits, the supervisor stops, or the timeout passes. */
  async #waitReady(name: string): Promise<void> {
    const url = this.#options.urls[name];
    if (url === undefined) return;
    const deadline = Date.now() + this.#options.readyTimeoutMs;
    while (Date.now() < deadline && !this.#stopping.signal.aborted) {
      try {
        const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await res.body?.cancel();
        if (res.ok) return;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 200));
    }
    if (!this.#stopping.signal.aborted) {
      await this.#log(
        `supervisor: ${name} not ready after ${
          this.#options.readyTimeoutMs / 1000
        } s; starting the next services anyway`,
      );
    }
  }

  /** Appends `line` to supervisor.log and the service's log; a log that cannot be written must not stop supervision. */
  async #log(line: string, service?: string): Promise<void> {
    const text = `${new Date().toISOString()} ${line}\n`;
    for (const name of service === undefined ? ["supervisor"] : ["supervisor", service]) {
      try {
        await Deno.writeTextFile(this.#logFile(name), text, { append: true });
      } catch (err) {
        console.error(`cannot write ${this.#logFile(name)}: ${(err as Error).message}; lost line: ${text}`);
      }
    }
  }

  #pidFile(name: string): string {
    return `${this.#options.runDir}/${name}.pid`;
  }

  #logFile(name: string): string {
    return `${this.#options.logDir}/${name}.log`;
  }
}

function signal(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    child.kill(sig);
  } catch { /* already exited */ }
}

function describe(status: Deno.CommandStatus): string {
  return status.signal !== null ? `signal ${status.signal}` : `exit code ${status.code}`;
}

if (import.meta.main) {
  const root = new URL("..", import.meta.url).pathname;
  const env = Deno.env.toObject();
  const resolve = (dir: string) => dir.startsWith("/") ? dir : `${root}${dir}`;
  const config = loadConfig(env);
  const urls: Record<string, string> = {};
  for (const name of ["auth", "inventory", "payments", "orders", "notifications", "gateway"] as const) {
    urls[name] = `http://${config.hostname}:${config.ports[name]}`;
  }
  const graceS = Number(env.TRELLIS_STOP_GRACE_S ?? "10");
  if (!(graceS > 0)) {
    throw new RangeError(
      `Cannot use TRELLIS_STOP_GRACE_S as a grace period: current value is ${env.TRELLIS_STOP_GRACE_S}`,
    );
  }
  // Tracing (up.sh passes OTEL_DENO as TRELLIS_OTEL_DENO, so this process is not instrumented): on unless "false";
  // exported to OTEL_EXPORTER_OTLP_ENDPOINT, else to a trace receiver served here on TRACES_PORT [4318].
  const tracing = (env.TRELLIS_OTEL_DENO ?? env.OTEL_DENO ?? "true") === "true";
  let receiver: TraceReceiver | undefined;
  if (tracing && !env.OTEL_EXPORTER_OTLP_ENDPOINT) {
    const port = Number(env.TRACES_PORT ?? 4318);
    try {
      receiver = startTraceReceiver({ port, hostname: config.hostname });
    } catch (err) {
      console.error(`supervise: cannot serve traces on port ${port} (set TRACES_PORT): ${(err as Error).message}`);
      Deno.exit(1);
    }
  }
  const supervisor = new Supervisor({
    env: tracing
      ? { OTEL_DENO: "true", ...(receiver ? { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url } : {}) }
      : { OTEL_DENO: "false" },
    root,
    runDir: resolve(env.TRELLIS_RUN_DIR ?? ".trellis/run"),
    logDir: resolve(env.TRELLIS_LOG_DIR ?? ".trellis/logs"),
    urls,
    stopGraceMs: graceS * 1000,
  });
  const onSignal = () => supervisor.stop().then(() => receiver?.close()).then(() => Deno.exit(0));
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  await supervisor.start();
}
