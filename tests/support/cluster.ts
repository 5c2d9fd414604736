import postgres from "postgres";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { clusterEnv } from "./ports.ts";
import { isolate, type IsolatedNetwork, waitUntil, within } from "@trellis/platform/testing";

const SERVICES = ["auth", "inventory", "payments", "orders", "notifications", "gateway"] as const;
const root = new URL("../../", import.meta.url).pathname;

/** One service process of a distributed cluster. */
interface Proc {
  name: string;
  child: Deno.ChildProcess;
  log: string;
  url: string;
  /** Settles once both output pipes have ended and the log file is closed. */
  drained: Promise<void>;
}

/** Options for {@linkcode startCluster}. */
export interface ClusterOptions {
  /** Extra environment for every service (e.g. `PAYMENTS_LATENCY_MS`). */
  env?: Record<string, string>;
  /**
   * Runs this one service in a network namespace of its own ({@linkcode isolate}), with three links a test can slow
   * down or cut through `cluster.network`: `postgres` (its database server), `kafka` (the broker) and `rest`
   * (NATS, the other services, and the ports it serves).
   */
  isolate?: (typeof SERVICES)[number];
}

/**
 * The six services as six processes against the real Postgres, Kafka and NATS named by `DATABASE_URL`,
 * `KAFKA_BROKERS` and `NATS_URL`, isolated from other runs by a unique database prefix and topic prefix.
 * Disposing sends SIGTERM to every process, checks each exits 0, and drops the databases and JetStream streams.
 */
export async function startCluster(options: ClusterOptions = {}) {
  const storageDir = await Deno.makeTempDir({ prefix: "trellis-cluster-" });
  const { id, ports: servicePorts, databaseUrl, env } = clusterEnv(storageDir, options.env);
  const ports: Record<string, number> = servicePorts;
  const dbUrl = (service: string) => {
    const url = new URL(databaseUrl);
    url.pathname = `/${id}_${service}`;
    return url.href;
  };
  const network = options.isolate ? await isolatedNetwork(options.isolate, env, ports) : undefined;
  const exits: { name: string; code: number; signal: Deno.Signal | null }[] = [];
  let stopping = false;
  const procs: Proc[] = [];
  const spawn = async (name: string): Promise<Proc> => {
    const log = `${storageDir}/${name}.log`;
    const args = ["run", "-A", `${root}services/${name}/main.ts`];
    // Each process names itself to OpenTelemetry (the resource's service.name), when a test turns tracing on.
    const spawnOptions = {
      cwd: root,
      env: { OTEL_SERVICE_NAME: name, ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    } as const;
    const child = network && name === options.isolate
      ? network.spawn(Deno.execPath(), args, spawnOptions)
      : new Deno.Command(Deno.execPath(), { args, ...spawnOptions }).spawn();
    const file = await Deno.open(log, { create: true, append: true });
    const sink = () => new WritableStream<Uint8Array>({ write: (chunk) => file.write(chunk).then(() => {}) });
    const drained = Promise.allSettled([child.stdout.pipeTo(sink()), child.stderr.pipeTo(sink())])
      .then(() => file.close());
    const proc = { name, child, log, url: `http://127.0.0.1:${ports[name]}`, drained };
    procs.push(proc);
    child.status.then((status) => {
      if (!stopping && procs.includes(proc)) exits.push({ name, code: status.code, signal: status.signal });
    });
    return proc;
  };
  const ready = async (p: Proc, timeoutMs = 90_000) => {
    const answers = async () => {
      try {
        const res = await fetch(`${p.url}/readyz`, { signal: AbortSignal.timeout(2_000) });
        await res.body?.cancel();
        return res.ok;
      } catch {
        return false; // not listening yet
      }
    };
    await waitUntil(answers, timeoutMs, `${p.name} to be ready`, 100).catch(async (err) => {
      throw new Error(`${err.message}; log:\n${await tail(p.log)}`, { cause: err });
    });
  };
  let stopped = false;
  // Edge inwards, as `deno task down` does: callers go before the services they call.
  const stopOrder = [["gateway"], ["orders", "notifications"], ["inventory", "payments"], ["auth"]];
  const stop = async () => {
    if (stopped) return [];
    stopped = true;
    stopping = true;
    const results: { name: string; code: number; log: string }[] = [];
    for (const wave of stopOrder) {
      results.push(
        ...await Promise.all(
          procs.filter((p) => wave.includes(p.name)).map(async (p) => {
            try {
              p.child.kill("SIGTERM");
            } catch { /* already gone */ }
            const [status] = await within(
              Promise.all([p.child.status, p.drained]),
              30_000,
              `${p.name} to exit after SIGTERM and its log to be written`,
            );
            return { name: p.name, code: status.code, log: p.log };
          }),
        ),
      );
    }
    await network?.[Symbol.asyncDispose]();
    const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
    try {
      for (const s of SERVICES) await sql.unsafe(`drop database if exists "${id}_${s}" with (force)`);
    } finally {
      await sql.end();
    }
    await deleteStreams(env.NATS_URL, env.TOPIC_PREFIX);
    return results;
  };

  try {
    await ready(await spawn("auth"));
    const rest = await Promise.all(SERVICES.filter((s) => s !== "auth").map(spawn));
    await Promise.all(rest.map((p) => ready(p)));
  } catch (err) {
    await stop();
    await Deno.remove(storageDir, { recursive: true });
    throw err;
  }
  const running = (name: string): Proc => {
    const p = procs.find((p) => p.name === name);
    if (!p) throw new TypeError(`Cannot find service "${name}" in the cluster: it is not running`);
    return p;
  };
  return {
    endpoints: { gateway: `http://127.0.0.1:${ports.gateway}`, auth: `http://127.0.0.1:${ports.auth}` },
    /** Prepended to every Kafka topic and NATS subject of this cluster (`TOPIC_PREFIX`), e.g. `t0123456789.`. */
    topicPrefix: env.TOPIC_PREFIX,
    /** The isolated service's network (`options.isolate`): `latency()`, `partition()` and `heal()` its links. */
    network,
    /** Each service's own database. */
    databases: Object.fromEntries(SERVICES.map((s) => [s, dbUrl(s)])) as Record<(typeof SERVICES)[number], string>,
    /** Local object storage of the cluster (receipts under `receipts/`). */
    storageDir,
    /** Services that exited without being asked to (neither `kill()` nor `stop()`), with how they ended. */
    exits,
    procs,
    /** SIGTERMs every service; resolves to each one's exit code. */
    stop,
    /**
     * SIGKILLs one service process (no shutdown hooks run) and waits until it is gone; it leaves `procs`, so `stop()`
     * does not count its exit. Start it again with `restart(name)`.
     */
    async kill(name: (typeof SERVICES)[number]): Promise<void> {
      const p = running(name);
      procs.splice(procs.indexOf(p), 1);
      p.child.kill("SIGKILL");
      await within(Promise.all([p.child.status, p.drained]), 10_000, `${name} to die after SIGKILL`);
    },
    /**
     * Starts a service killed by `kill(name)` again, with the same ports, environment and log file (appended to),
     * resolving once its `/readyz` answers 200; rejects with its log's tail after `timeoutMs`.
     */
    async restart(name: (typeof SERVICES)[number], timeoutMs = 90_000): Promise<void> {
      if (procs.some((p) => p.name === name)) {
        throw new TypeError(`Cannot restart service "${name}": it is running (kill it first)`);
      }
      await ready(await spawn(name), timeoutMs);
    },
    async tail(name: string) {
      return await tail(procs.find((p) => p.name === name)!.log);
    },
    async [Symbol.asyncDispose]() {
      await stop();
      await Deno.remove(storageDir, { recursive: true });
    },
  };
}

/** The links of an isolated service: its database, its broker, and everything else it talks to or serves. */
async function isolatedNetwork(
  service: string,
  env: Record<string, string>,
  ports: Record<string, number>,
): Promise<IsolatedNetwork> {
  const portOf = (address: string) => Number(new URL(address.includes("://") ? address : `tcp://${address}`).port);
  const own = (name: string) => name === service || name === `${service}Grpc`;
  const all: Record<string, number> = {
    ...ports,
    ordersGrpc: Number(env.ORDERS_GRPC_PORT),
    inventoryGrpc: Number(env.INVENTORY_GRPC_PORT),
    paymentsGrpc: Number(env.PAYMENTS_GRPC_PORT),
  };
  return await isolate({
    links: {
      postgres: { outbound: [portOf(env.DATABASE_URL)] },
      kafka: { outbound: env.KAFKA_BROKERS.split(",").map(portOf) },
      rest: {
        outbound: [portOf(env.NATS_URL), ...Object.entries(all).filter(([n]) => !own(n)).map(([, p]) => p)],
        inbound: Object.entries(all).filter(([n]) => own(n)).map(([, p]) => p),
      },
    },
  });
}

/**
 * Deletes the JetStream streams whose subjects start with `prefix` (one run's receipts and their dead letters), so
 * runs leave nothing on a shared server. Best effort: a chaos case may have killed a private server for good.
 */
async function deleteStreams(natsUrl: string, prefix: string): Promise<void> {
  let nc;
  try {
    nc = await connect({ servers: natsUrl, timeout: 2000, maxReconnectAttempts: 0 });
    const jsm = await jetstreamManager(nc);
    for await (const s of jsm.streams.list()) {
      if (s.config.subjects?.some((subject) => subject.startsWith(prefix))) await jsm.streams.delete(s.config.name);
    }
  } catch {
    /* nothing to clean on a server that is gone */
  } finally {
    await nc?.close();
  }
}

async function tail(path: string, lines = 40): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
