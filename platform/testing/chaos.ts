import { waitUntil, within } from "./bounded.ts";
/**
 * Private infrastructure for fault tests: a Postgres, NATS (with JetStream) or Kafka of the test's own, started by
 * `scripts/infra.sh` in a temporary directory on free ports, that the test may kill, pause, stop and start again
 * without touching the machine's shared servers.
 *
 * @module
 */

const SCRIPT = new URL("../../scripts/infra.sh", import.meta.url).pathname;

/**
 * The components {@linkcode startComponent} can run.
 *
 * @example Start each kind in turn
 * ```ts ignore
 * import { type ComponentKind, startComponent } from "./chaos.ts";
 * for (const kind of ["postgres", "nats", "kafka"] satisfies ComponentKind[]) {
 *   await using component = await startComponent(kind);
 *   console.log(kind, component.url);
 * }
 * ```
 */
export type ComponentKind = "postgres" | "nats" | "kafka";

/**
 * A private server a test owns. Every method resolves once the server is in the state it names.
 *
 * @example Pause NATS under a consumer
 * ```ts ignore
 * import { type Component, startNats } from "./chaos.ts";
 * await using nats: Component = await startNats();
 * await nats.pause(); // connections stay open, nothing answers
 * await nats.resume();
 * ```
 */
export interface Component extends AsyncDisposable {
  readonly kind: ComponentKind;
  /** Client port on 127.0.0.1. */
  readonly port: number;
  /**
   * What a client connects to: `postgres://postgres@127.0.0.1:<port>/postgres`, `nats://127.0.0.1:<port>` or
   * `127.0.0.1:<port>` (a Kafka bootstrap address).
   */
  readonly url: string;
  /** Process ids of the server (for Postgres: the postmaster and every backend); empty when it is not running. */
  pids(): number[];
  /** SIGKILL to every process of the server, as a crash or an OOM kill would; resolves once they are gone. */
  kill(): Promise<void>;
  /** SIGSTOP to every process of the server: it hangs, connections stay open, nothing answers. */
  pause(): Promise<void>;
  /** SIGCONT after {@linkcode Component.pause}. */
  resume(): Promise<void>;
  /** Graceful stop (`infra.sh down`); its data stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data (crash recovery included); resolves once it serves clients. */
  start(): Promise<void>;
}

/**
 * Options for {@linkcode startComponent}.
 *
 * @example A Postgres without fsync, for speed
 * ```ts
 * import type { ComponentOptions } from "./chaos.ts";
 * const options: ComponentOptions = { env: { TRELLIS_PG_UNSAFE: "1" } };
 * ```
 */
export interface ComponentOptions {
  /** Extra environment for `scripts/infra.sh` (e.g. `TRELLIS_PG_UNSAFE=1` for throwaway speed). @default {{}} */
  env?: Record<string, string>;
}

/**
 * Starts a private `kind` server through `scripts/infra.sh` with its own `TRELLIS_INFRA_DIR` and free ports;
 * disposing stops it and removes its data. Postgres runs with the same durability as `deno task up` runs it.
 *
 * @example Kill Postgres under a client and see it come back
 * ```ts ignore
 * import { startComponent } from "./chaos.ts";
 * await using pg = await startComponent("postgres");
 * await pg.kill();   // SIGKILL: acknowledged commits must survive
 * await pg.start();  // crash recovery, then it serves again
 * ```
 */
export async function startComponent(kind: ComponentKind, options: ComponentOptions = {}): Promise<Component> {
  const dir = await Deno.makeTempDir({ prefix: `trellis-${kind}-` });
  // 0700 by default; a Postgres run as the postgres user must be able to reach its data directory below.
  await Deno.chmod(dir, 0o755);
  const [port, controllerPort] = freePorts(2);
  const env: Record<string, string> = { TRELLIS_INFRA_DIR: dir, ...options.env };
  if (kind === "postgres") env.TRELLIS_PG_PORT = String(port);
  if (kind === "nats") env.TRELLIS_NATS_PORT = String(port);
  if (kind === "kafka") {
    env.TRELLIS_KAFKA_PORT = String(port);
    env.TRELLIS_KAFKA_CONTROLLER_PORT = String(controllerPort);
  }
  const infra = async (action: "up" | "down") => {
    // Generous: the first `up` of a kind may install it (apt-get, a Kafka download) before starting it.
    const out = await within(
      new Deno.Command("bash", { args: [SCRIPT, action, kind], env, stdin: "null", stdout: "piped", stderr: "piped" })
        .output(),
      600_000,
      `infra.sh ${action} ${kind} on port ${port}`,
    );
    if (out.code !== 0) {
      const text = new TextDecoder();
      throw new Error(
        `Cannot ${action} a private ${kind} on port ${port} as infra.sh failed: exit code is ${out.code}\n${
          text.decode(out.stdout)
        }${text.decode(out.stderr)}`,
      );
    }
  };
  const mainPid = (): number | undefined => {
    const file = kind === "postgres"
      ? `${dir}/postgres-${port}/data/postmaster.pid`
      : kind === "nats"
      ? `${dir}/nats-${port}/nats.pid`
      : `${dir}/kafka-${port}/kafka.pid`;
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      return undefined;
    }
    const pid = Number(text.split("\n")[0].trim());
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
  };
  const pids = (): number[] => {
    const pid = mainPid();
    if (pid === undefined) return [];
    // A Postgres crash takes its backends with it; the other servers are single processes.
    return kind === "postgres" ? [pid, ...childrenOf(pid)] : [pid];
  };
  const signalAll = (signal: Deno.Signal) => {
    const targets = pids();
    if (targets.length === 0) throw new Error(`Cannot send ${signal} to the private ${kind}: it is not running`);
    for (const pid of targets) {
      try {
        Deno.kill(pid, signal);
      } catch { /* exited meanwhile */ }
    }
    return targets;
  };
  const remove = async () => {
    try {
      // A paused server would ignore SIGTERM until resumed.
      for (const pid of pids()) {
        try {
          Deno.kill(pid, "SIGCONT");
        } catch { /* gone */ }
      }
      await infra("down");
    } finally {
      for (const pid of pids()) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await Deno.remove(dir, { recursive: true });
    }
  };
  try {
    await infra("up");
  } catch (err) {
    await remove().catch(() => {});
    throw err;
  }
  return {
    kind,
    port,
    url: kind === "postgres"
      ? `postgres://postgres@127.0.0.1:${port}/postgres`
      : kind === "nats"
      ? `nats://127.0.0.1:${port}`
      : `127.0.0.1:${port}`,
    pids,
    async kill() {
      const targets = signalAll("SIGKILL");
      await waitUntil(() => targets.every((pid) => !alive(pid)), 10_000, `the private ${kind} to die after SIGKILL`);
      // A zombie still counts as running for `kill -0`, so Postgres' lock file check and infra.sh's pid checks
      // would take it for a live server; wait until whoever adopted the orphans has reaped them.
      await waitUntil(() => targets.every((pid) => !exists(pid)), 30_000, `the killed ${kind} processes to be reaped`);
    },
    async pause() {
      const targets = signalAll("SIGSTOP");
      // kill() returns before every thread has stopped (on a busy machine a Go server's threads can still answer for
      // a few milliseconds), so wait until the kernel reports each thread stopped.
      await waitUntil(() => targets.every(stopped), 10_000, `the private ${kind} to stop after SIGSTOP`);
    },
    resume() {
      signalAll("SIGCONT");
      return Promise.resolve();
    },
    stop: () => infra("down"),
    start: () => infra("up"),
    [Symbol.asyncDispose]: remove,
  };
}

/**
 * A private Postgres ({@linkcode startComponent}).
 *
 * @example Kill Postgres and bring it back
 * ```ts ignore
 * import { startPostgres } from "./chaos.ts";
 * await using pg = await startPostgres();
 * await pg.kill();
 * await pg.start();
 * ```
 */
export function startPostgres(options?: ComponentOptions): Promise<Component> {
  return startComponent("postgres", options);
}

/**
 * A private NATS server with JetStream ({@linkcode startComponent}).
 *
 * @example A NATS of the test's own
 * ```ts ignore
 * import { startNats } from "./chaos.ts";
 * await using nats = await startNats();
 * console.log(nats.url); // nats://127.0.0.1:<port>
 * ```
 */
export function startNats(options?: ComponentOptions): Promise<Component> {
  return startComponent("nats", options);
}

/**
 * A private single-node Kafka in KRaft mode ({@linkcode startComponent}).
 *
 * @example Stop Kafka gracefully, then start it again
 * ```ts ignore
 * import { startKafka } from "./chaos.ts";
 * await using kafka = await startKafka();
 * await kafka.stop();
 * await kafka.start();
 * ```
 */
export function startKafka(options?: ComponentOptions): Promise<Component> {
  return startComponent("kafka", options);
}

/**
 * `n` distinct ports the kernel just handed out on 127.0.0.1 (held at once, then released).
 *
 * @example Ports for two servers
 * ```ts
 * import { freePorts } from "./chaos.ts";
 * const [http, grpc] = freePorts(2);
 * http !== grpc; // true
 * ```
 */
export function freePorts(n: number): number[] {
  const listeners = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/**
 * Whether a process exists and is not a zombie.
 *
 * @example Whether this process runs
 * ```ts
 * import { alive } from "./chaos.ts";
 * alive(Deno.pid); // true
 * ```
 */
export function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function exists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether every thread of `pid` is stopped (state `T` in /proc). A process that is gone or exited (a zombie: a Postgres
 * backend that ended as its paused postmaster stopped, so nobody reaps it) counts as stopped.
 */
function stopped(pid: number): boolean {
  try {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      const stat = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/stat`);
      // The state follows the command name, which is in parentheses and may itself hold spaces or parentheses.
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state !== "T" && state !== "t" && state !== "Z" && state !== "X") return false;
    }
    return true;
  } catch {
    return !exists(pid);
  }
}

/** Direct children of `pid`, from /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(entry.name));
    } catch { /* exited meanwhile */ }
  }
  return out;
}
