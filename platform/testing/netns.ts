/**
 * Puts one process behind a network of its own (a Linux network namespace), so a test can add latency between it
 * and one dependency, or cut it off, while everybody keeps addressing everybody at `127.0.0.1:<port>`.
 *
 * @module
 */
import type { ForwardSpec, LatencyCommand } from "./_forwarder.ts";

const FORWARDER = new URL("./_forwarder.ts", import.meta.url).href;
const PREFIX = "trellis-";
/** Namespaces left by a crashed run are removed once their creator is gone and they are this old. */
const STALE_AFTER_MS = 60 * 60 * 1000;
const READY_TIMEOUT_MS = 15_000;

/** The ports one link carries. */
export interface LinkOptions {
  /**
   * Ports on the host's 127.0.0.1 the isolated process connects to (Postgres, NATS, Kafka, other services): inside
   * the namespace, 127.0.0.1:<port> reaches the host's 127.0.0.1:<port> across this link.
   * @default {[]}
   */
  outbound?: number[];
  /**
   * Ports the isolated process serves on its 127.0.0.1 (its HTTP and gRPC ports): on the host, 127.0.0.1:<port>
   * reaches the namespace's 127.0.0.1:<port> across this link. The port must be free on the host.
   * @default {[]}
   */
  inbound?: number[];
}

/** Options for {@linkcode isolate}. */
export interface IsolateOptions {
  /**
   * Named links, each its own veth pair, so a fault can target one dependency: e.g.
   * `{ postgres: { outbound: [5432] }, rest: { outbound: [4222, 9092], inbound: [8080] } }`.
   */
  links: Record<string, LinkOptions>;
}

/** Options for {@linkcode IsolatedNetwork.spawn}: those of `Deno.Command` that make sense inside a namespace. */
export type IsolatedSpawnOptions = Pick<
  Deno.CommandOptions,
  "env" | "clearEnv" | "cwd" | "stdin" | "stdout" | "stderr"
>;

interface LinkDevices {
  name: string;
  /** Host end of the veth pair. */
  host: string;
  hostIp: string;
  nsIp: string;
  partitioned: boolean;
}

/**
 * A network namespace with one veth pair per link and the forwarders that make `127.0.0.1:<port>` mean the same
 * inside and outside it. Create it with {@linkcode isolate}; disposing it kills what it spawned, its forwarders,
 * and removes its devices and namespace.
 *
 * Faults act on the path between the two forwarders of a link:
 * - {@linkcode IsolatedNetwork.partition}: every IP packet crossing the link's veth is dropped in the kernel (tc
 *   on the host end), so traffic across it hangs and nothing is reset, as in a real partition.
 * - {@linkcode IsolatedNetwork.latency}: the host-side forwarder holds each byte for half the given time in each
 *   direction, so the round trip grows by the given time. This kernel has no `netem`, so the delay is added in the
 *   forwarder (in order, pipelined: throughput is not cut); the TCP handshake itself is not delayed, only the data.
 *
 * What differs from a real network, because each side talks to a forwarder on its own loopback: a connect always
 * succeeds at once (even across a partition: the bytes sent then hang, so a client's connect timeout does not fire,
 * its read or query timeout does); TCP keepalives of the isolated process are answered by the forwarder; the far
 * end sees connections from 127.0.0.1 (inbound: the forwarder) as if local. Each round trip through a link costs
 * about 1 ms more than loopback on a loaded 2-core machine (scripts/bench_netns.ts).
 */
export class IsolatedNetwork implements AsyncDisposable {
  readonly #links: Map<string, LinkDevices>;
  readonly #sink: string;
  readonly #hostForwarder: Forwarder;
  readonly #nsForwarder: Forwarder;
  readonly #children = new Set<Deno.ChildProcess>();
  #disposed = false;

  /** Use {@linkcode isolate}. */
  constructor(
    /** The namespace's name (`trellis-<pid>-<hex>`), for `ip netns exec` by hand. */
    readonly name: string,
    links: Map<string, LinkDevices>,
    sink: string,
    hostForwarder: Forwarder,
    nsForwarder: Forwarder,
  ) {
    this.#links = links;
    this.#sink = sink;
    this.#hostForwarder = hostForwarder;
    this.#nsForwarder = nsForwarder;
  }

  /**
   * Starts `command` inside the namespace (through `ip netns exec`). The process sees only its own loopback, on
   * which the links' outbound ports are forwarded to the host. It is killed (SIGKILL) on disposal if still running.
   *
   * @example Run a script inside
   * ```ts ignore
   * const child = net.spawn(Deno.execPath(), ["run", "-A", "services/orders/main.ts"], { env: { PORT: "8080" } });
   * ```
   */
  spawn(command: string, args: string[] = [], options: IsolatedSpawnOptions = {}): Deno.ChildProcess {
    this.#assertOpen("spawn a process");
    const child = new Deno.Command(tool("ip"), {
      ...options,
      args: ["netns", "exec", this.name, command, ...args],
    }).spawn();
    this.#children.add(child);
    child.status.then(() => this.#children.delete(child));
    return child;
  }

  /**
   * Adds `ms` to the round trip of every byte exchange on `link` (half each way), for connections already open and
   * new ones; `latency(link, 0)` removes it.
   *
   * @example A slow database
   * ```ts ignore
   * await net.latency("postgres", 100); // each query now takes ≥ 100 ms longer
   * ```
   */
  async latency(link: string, ms: number): Promise<void> {
    this.#assertOpen("add latency");
    this.#link(link, "add latency");
    if (!Number.isFinite(ms) || ms < 0) {
      throw new RangeError(`Cannot add latency as ${ms} ms: current value is not a finite number ≥ 0`);
    }
    const command: LatencyCommand = { link, latencyMs: ms };
    const answer = await this.#hostForwarder.command(JSON.stringify(command));
    if (answer !== "ok") throw new Error(`Cannot add latency to link "${link}": the forwarder answered ${answer}`);
  }

  /**
   * Drops every IP packet on `link`, both ways, until {@linkcode heal}: open connections hang (their TCP
   * retransmits are dropped too) and new connections across the link do not complete.
   *
   * @example Cut the service off from Postgres only
   * ```ts ignore
   * await net.partition("postgres");
   * ```
   */
  async partition(link: string): Promise<void> {
    this.#assertOpen("partition");
    const devices = this.#link(link, "partition");
    if (devices.partitioned) return;
    for (const hook of ["egress", "ingress"]) {
      await run("tc", [
        "filter",
        "add",
        "dev",
        devices.host,
        hook,
        "protocol",
        "ip",
        "pref",
        "1",
        "u32",
        "match",
        "u32",
        "0",
        "0",
        // Redirecting to a device that is down drops the packet: this kernel has neither netem nor gact.
        "action",
        "mirred",
        "egress",
        "redirect",
        "dev",
        this.#sink,
      ]);
    }
    devices.partitioned = true;
  }

  /**
   * Removes a partition and the latency of `link`. Traffic stuck during a partition resumes at its next TCP
   * retransmission, as on a real network: up to a few seconds after a long partition.
   *
   * @example
   * ```ts ignore
   * await net.heal("postgres");
   * ```
   */
  async heal(link: string): Promise<void> {
    this.#assertOpen("heal");
    const devices = this.#link(link, "heal");
    if (devices.partitioned) {
      for (const hook of ["egress", "ingress"]) {
        await run("tc", ["filter", "del", "dev", devices.host, hook, "pref", "1"]);
      }
      devices.partitioned = false;
    }
    await this.latency(link, 0);
  }

  /** Kills the spawned processes and forwarders, then removes the veth pairs and the namespace. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await Promise.all([...this.#children].map(async (child) => {
      try {
        child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
      await child.status;
    }));
    await Promise.all([this.#hostForwarder.close(), this.#nsForwarder.close()]);
    await removeNamespace(this.name, [...[...this.#links.values()].map((l) => l.host), this.#sink]);
  }

  #assertOpen(action: string) {
    if (this.#disposed) throw new TypeError(`Cannot ${action} as namespace ${this.name}: it is disposed`);
  }

  #link(name: string, action: string): LinkDevices {
    const link = this.#links.get(name);
    if (!link) {
      throw new RangeError(
        `Cannot ${action} as link "${name}": current value is not one of ${[...this.#links.keys()].join(", ")}`,
      );
    }
    return link;
  }
}

/**
 * Creates a network namespace in which {@linkcode IsolatedNetwork.spawn} runs processes whose traffic to and from
 * `127.0.0.1:<port>` crosses one veth pair per named link, so a test can slow down or cut one link. Needs root and
 * iproute2 (`ip`, `tc`). Each forwarded port costs two forwarders (one per side of the veth, in two child processes
 * per namespace); other addresses (e.g. `localhost` resolving to `::1`) are not forwarded.
 *
 * @example Slow down and cut off a service's database
 * ```ts ignore
 * import { isolate } from "./netns.ts";
 * await using net = await isolate({
 *   links: { postgres: { outbound: [5432] }, rest: { outbound: [4222, 9092], inbound: [8080] } },
 * });
 * const service = net.spawn(Deno.execPath(), ["run", "-A", "services/orders/main.ts"], { env: { PORT: "8080" } });
 * await net.latency("postgres", 100);                 // +100 ms per round trip to Postgres only
 * await fetch("http://127.0.0.1:8080/health");       // reaches the service inside across link "rest"
 * await net.partition("postgres");                    // its queries hang; NATS and Kafka still flow
 * await net.heal("postgres");
 * ```
 */
export async function isolate(options: IsolateOptions): Promise<IsolatedNetwork> {
  const entries = Object.entries(options?.links ?? {});
  if (entries.length === 0) {
    throw new TypeError(`Cannot isolate as links ${JSON.stringify(options?.links)}: current value has no link`);
  }
  const seen = new Set<number>();
  for (const [name, link] of entries) {
    if ((link.outbound?.length ?? 0) + (link.inbound?.length ?? 0) === 0) {
      throw new RangeError(`Cannot isolate as link "${name}": current value carries no port`);
    }
    for (const port of [...(link.outbound ?? []), ...(link.inbound ?? [])]) {
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw new RangeError(`Cannot forward as port ${port} on link "${name}": current value is not in 1..65535`);
      }
      if (seen.has(port)) {
        throw new RangeError(`Cannot forward as port ${port} on link "${name}": current value is forwarded twice`);
      }
      seen.add(port);
    }
  }
  await removeStaleNamespaces().catch(() => {});

  const id = randomHex(3);
  const name = `${PREFIX}${Deno.pid}-${id}`;
  const sink = `tr${id}s`;
  const links = new Map<string, LinkDevices>();
  const hostSide: ForwardSpec[] = [];
  const nsSide: ForwardSpec[] = [];
  const devices: string[] = [];
  let hostForwarder: Forwarder | undefined;
  let nsForwarder: Forwarder | undefined;
  try {
    await run("ip", ["netns", "add", name]);
    await run("ip", ["-n", name, "link", "set", "lo", "up"]);
    await run("ip", ["link", "add", sink, "type", "veth", "peer", "name", "sink", "netns", name]);
    devices.push(sink);
    const taken = await takenSubnets();
    for (const [i, [linkName, link]] of entries.entries()) {
      const host = `tr${id}${i}h`;
      const [hostIp, nsIp] = freeSubnet(taken);
      await run("ip", ["link", "add", host, "type", "veth", "peer", "name", `l${i}`, "netns", name]);
      devices.push(host);
      await run("ip", ["addr", "add", `${hostIp}/30`, "dev", host]);
      await run("ip", ["link", "set", host, "up"]);
      await run("ip", ["-n", name, "addr", "add", `${nsIp}/30`, "dev", `l${i}`]);
      await run("ip", ["-n", name, "link", "set", `l${i}`, "up"]);
      await run("tc", ["qdisc", "add", "dev", host, "clsact"]);
      links.set(linkName, { name: linkName, host, hostIp, nsIp, partitioned: false });
      const local = "127.0.0.1";
      for (const port of link.outbound ?? []) {
        nsSide.push({ listen: { hostname: local, port }, connect: { hostname: hostIp, port }, link: linkName });
        hostSide.push({ listen: { hostname: hostIp, port }, connect: { hostname: local, port }, link: linkName });
      }
      for (const port of link.inbound ?? []) {
        hostSide.push({ listen: { hostname: local, port }, connect: { hostname: nsIp, port }, link: linkName });
        nsSide.push({ listen: { hostname: nsIp, port }, connect: { hostname: local, port }, link: linkName });
      }
    }
    const [host, ns] = await Promise.allSettled([
      Forwarder.start([], hostSide),
      Forwarder.start(["netns", "exec", name], nsSide),
    ]);
    if (host.status === "fulfilled") hostForwarder = host.value;
    if (ns.status === "fulfilled") nsForwarder = ns.value;
    if (host.status === "rejected") throw host.reason;
    if (ns.status === "rejected") throw ns.reason;
    return new IsolatedNetwork(name, links, sink, host.value, ns.value);
  } catch (err) {
    await Promise.all([hostForwarder?.close(), nsForwarder?.close()]);
    await removeNamespace(name, devices).catch(() => {});
    throw err;
  }
}

/** A forwarder child process (`_forwarder.ts`), run directly or through `ip netns exec`. */
class Forwarder {
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    this.#lines = lines(child.stdout)[Symbol.asyncIterator]();
  }

  static async start(prefix: string[], forwards: ForwardSpec[]): Promise<Forwarder> {
    const deno = Deno.execPath();
    const args = ["run", "--quiet", "--no-config", "--no-lock", "--allow-net", FORWARDER, JSON.stringify(forwards)];
    const child = new Deno.Command(prefix.length > 0 ? tool("ip") : deno, {
      args: prefix.length > 0 ? [...prefix, deno, ...args] : args,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const forwarder = new Forwarder(child);
    const stderr = new Response(child.stderr).text();
    try {
      const ready = await forwarder.#next(READY_TIMEOUT_MS);
      if (ready !== "ready") throw new Error(`it printed ${JSON.stringify(ready)}`);
    } catch (err) {
      await forwarder.close();
      throw new Error(`Cannot start a forwarder for ${forwards.length} ports: ${err}\n${await stderr}`);
    }
    // Later stderr output (none expected) is drained so the pipe never fills up.
    stderr.catch(() => {});
    return forwarder;
  }

  /** Sends one line and resolves with the answering line. */
  command(line: string): Promise<string> {
    const result = this.#queue.then(async () => {
      await this.#stdin.write(new TextEncoder().encode(`${line}\n`));
      return await this.#next(READY_TIMEOUT_MS);
    });
    this.#queue = result.catch(() => {});
    return result;
  }

  async #next(timeoutMs: number): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      const next = await Promise.race([this.#lines.next(), timeout]);
      if (next.done) throw new Error("it exited");
      return next.value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends its stdin (it exits on that), SIGKILL if it has not exited within 5 s. */
  async close(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
    }, 5000);
    await this.#child.status;
    clearTimeout(timer);
    await this.#lines.return?.();
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    buffered += text;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
}

/** Kills what still runs inside, deletes the host ends of the veth pairs (which deletes their peers), then the namespace. */
async function removeNamespace(name: string, devices: string[]): Promise<void> {
  const pids = await output("ip", ["netns", "pids", name]).catch(() => "");
  for (const pid of pids.split(/\s+/).filter(Boolean)) {
    try {
      Deno.kill(Number(pid), "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
  for (const device of devices) await run("ip", ["link", "del", device]).catch(() => {});
  await run("ip", ["netns", "del", name]);
}

/** Options for {@linkcode removeStaleNamespaces}. */
export interface RemoveStaleOptions {
  /**
   * Minimum age of a namespace to remove.
   * @default {3_600_000}
   */
  olderThanMs?: number;
}

/**
 * Removes the `trellis-<pid>-<hex>` namespaces (with what runs in them and their veth pairs) whose creating process
 * is gone and which are older than `olderThanMs`: what a crashed test run left behind. {@linkcode isolate} calls it
 * with the default age; a CI job may call it with 0 before a run. Returns the names removed.
 *
 * @example Clean up after crashed runs
 * ```ts ignore
 * import { removeStaleNamespaces } from "./netns.ts";
 * console.log(await removeStaleNamespaces({ olderThanMs: 0 }));
 * ```
 */
export async function removeStaleNamespaces(options: RemoveStaleOptions = {}): Promise<string[]> {
  const olderThanMs = options.olderThanMs ?? STALE_AFTER_MS;
  if (!Number.isFinite(olderThanMs) || olderThanMs < 0) {
    throw new RangeError(`Cannot remove stale namespaces as olderThanMs ${olderThanMs}: current value is not ≥ 0`);
  }
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir("/run/netns"));
  } catch {
    return removed;
  }
  for (const entry of entries) {
    const match = entry.name.match(/^trellis-(\d+)-([0-9a-f]+)$/);
    if (!match) continue;
    const creatorAlive = await Deno.stat(`/proc/${match[1]}`).then(() => true, () => false);
    const { mtime } = await Deno.stat(`/run/netns/${entry.name}`);
    if (creatorAlive || !mtime || Date.now() - mtime.getTime() < olderThanMs) continue;
    const devices = (await output("ip", ["-o", "link", "show"]))
      .split("\n")
      .map((line) => line.split(":")[1]?.trim().split("@")[0])
      .filter((device) => device?.startsWith(`tr${match[2]}`));
    await removeNamespace(entry.name, devices);
    removed.push(entry.name);
  }
  return removed;
}

/** The /30 networks (as their first three octets and base) already on the host, from `ip -4 addr`. */
async function takenSubnets(): Promise<Set<string>> {
  const text = await output("ip", ["-o", "-4", "addr", "show"]);
  const taken = new Set<string>();
  for (const [, address] of text.matchAll(/inet (\d+\.\d+\.\d+\.\d+)/g)) taken.add(subnetOf(address));
  return taken;
}

/** A random /30 in 10.192.0.0/10 not in `taken` (which it joins): the host end is .1, the namespace end .2. */
function freeSubnet(taken: Set<string>): [string, string] {
  for (;;) {
    const [a, b, c] = crypto.getRandomValues(new Uint8Array(3));
    const base = `10.${192 + (a & 63)}.${b}.${c & 0xfc}`;
    if (taken.has(subnetOf(base))) continue;
    taken.add(subnetOf(base));
    const prefix = base.slice(0, base.lastIndexOf(".") + 1);
    const last = c & 0xfc;
    return [`${prefix}${last + 1}`, `${prefix}${last + 2}`];
  }
}

function subnetOf(address: string): string {
  const parts = address.split(".").map(Number);
  return `${parts[0]}.${parts[1]}.${parts[2]}.${parts[3] & 0xfc}`;
}

function randomHex(bytes: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("");
}

const tools = new Map<string, string>();

/** `ip` or `tc` from the usual sbin directories, which are not always on PATH. */
function tool(name: "ip" | "tc"): string {
  let path = tools.get(name);
  if (path) return path;
  path = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map((dir) => `${dir}/${name}`).find((candidate) => {
    try {
      return Deno.statSync(candidate).isFile;
    } catch {
      return false;
    }
  }) ?? name;
  tools.set(name, path);
  return path;
}

async function output(name: "ip" | "tc", args: string[]): Promise<string> {
  const out = await new Deno.Command(tool(name), { args, stdin: "null", stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  if (out.code !== 0) {
    throw new Error(
      `Cannot run ${name} ${args.join(" ")}: exit code is ${out.code}: ${text.decode(out.stderr).trim()}`,
    );
  }
  return text.decode(out.stdout);
}

async function run(name: "ip" | "tc", args: string[]): Promise<void> {
  await output(name, args);
}
