/**
 * Puts one process behind a network of its own (a Linux network namespace), so a test can add latency between it
 * and one dependency, or cut it off, while everybody keeps addressing everybody at `127.0.0.1:<port>`.
 *
 * How: the process runs in namespace `trellis-<pid>-<hex>`, whose only way out is one veth pair per link to a
 * router namespace (`…-router`). Inside, policy routing (`ip rule … dport <port>`, with `route_localnet` on the
 * veth) sends a connection to 127.0.0.1:<outbound port> across its link's veth, so the process's own TCP connection
 * crosses the faulty wire. In the router, a forwarder accepts it on the router's 127.0.0.1:<port> and relays it over
 * a second veth pair (never faulted) to a forwarder on the host, which connects to the host's 127.0.0.1:<port>: the
 * server sees a local client, as before. Inbound ports go the other way: host forwarder on 127.0.0.1:<port> →
 * router forwarder → 127.0.0.1:<port> routed across the link's veth to the process. Partitions are tc filters on
 * the router's end of a link; latency is added by the router's forwarder (this kernel has no `netem`).
 *
 * @module
 */
import type { ForwardSpec, LatencyCommand } from "./_forwarder.ts";
import { TextLineStream } from "./text_line_stream.ts";
import { within } from "./bounded.ts";

const FORWARDER = new URL("./_forwarder.ts", import.meta.url).href;
const PREFIX = "trellis-";
/** Namespaces left by a crashed run are removed once their creator is gone and they are this old. */
const STALE_AFTER_MS = 60 * 60 * 1000;
/** The router namespace of `trellis-<pid>-<hex>` is `trellis-<pid>-<hex>-router`. */
const ROUTER_SUFFIX = "-router";
/** The tc hooks on the router's end of a link per direction: egress goes to the process, ingress comes from it. */
const HOOKS: Record<string, string[]> = { both: ["egress", "ingress"], incoming: ["egress"], outgoing: ["ingress"] };
/** A device in the router namespace that stays down. */
const SINK = "sink";
const READY_TIMEOUT_MS = 15_000;

/**
 * The ports one link carries.
 *
 * @example A link to Postgres only
 * ```ts
 * import type { LinkOptions } from "./netns.ts";
 * const postgres: LinkOptions = { outbound: [5432] };
 * ```
 */
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

/**
 * Options for {@linkcode isolate}.
 *
 * @example Fault Postgres apart from everything else
 * ```ts
 * import type { IsolateOptions } from "./netns.ts";
 * const options: IsolateOptions = {
 *   links: { postgres: { outbound: [5432] }, rest: { outbound: [4222, 9092], inbound: [8080] } },
 * };
 * ```
 */
export interface IsolateOptions {
  /**
   * Named links, each its own veth pair, so a fault can target one dependency: e.g.
   * `{ postgres: { outbound: [5432] }, rest: { outbound: [4222, 9092], inbound: [8080] } }`.
   */
  links: Record<string, LinkOptions>;
}

/**
 * Options for {@linkcode IsolatedNetwork.spawn}: those of `Deno.Command` that make sense inside a namespace.
 *
 * @example Pass the service its configuration
 * ```ts
 * import type { IsolatedSpawnOptions } from "./netns.ts";
 * const options: IsolatedSpawnOptions = { env: { PORT: "8080", LOG_LEVEL: "warn" }, stdout: "null" };
 * ```
 */
export type IsolatedSpawnOptions = Pick<
  Deno.CommandOptions,
  "env" | "clearEnv" | "cwd" | "stdin" | "stdout" | "stderr"
>;

interface LinkDevices {
  name: string;
  /** The router's end of the link's veth pair, where faults are set. */
  device: string;
  /** The tc hooks of `device` that drop packets: egress (towards the process), ingress (from it). */
  dropping: Set<string>;
}

/**
 * Options for {@linkcode IsolatedNetwork.partition}.
 *
 * @example Drop only what the process sends
 * ```ts
 * import type { PartitionOptions } from "./netns.ts";
 * const options: PartitionOptions = { direction: "outgoing" };
 * ```
 */
export interface PartitionOptions {
  /**
   * Which packets to drop, seen from the isolated process: `"outgoing"` (what it sends), `"incoming"` (what it
   * receives) or `"both"`.
   * @default {"both"}
   */
  direction?: "both" | "incoming" | "outgoing";
}

/**
 * A network namespace with one veth pair per link, a router namespace and the forwarders that make
 * `127.0.0.1:<port>` mean the same inside and outside it (see the module doc). Create it with {@linkcode isolate};
 * disposing it kills what it spawned and its forwarders, and removes its devices and namespaces.
 *
 * Faults act on a link's veth pair, which the isolated process's own TCP connections cross:
 * - {@linkcode IsolatedNetwork.partition}: every IP packet on the link is dropped in the kernel, so open connections
 *   hang (their retransmissions are dropped too), connects from inside hang in the handshake, keepalives fail and
 *   nothing is reset, as in a real partition.
 * - {@linkcode IsolatedNetwork.latency}: the router's forwarder holds each byte for half the given time in each
 *   direction, so the round trip grows by the given time (in order, pipelined: throughput is not cut). The TCP
 *   handshake itself is not delayed, only the data.
 *
 * What differs from a real network: on an inbound link the host-side client connects to a forwarder, so its connect
 * succeeds at once even across a partition (then its bytes hang: its read timeout fires, not its connect timeout);
 * the far end of an outbound port sees a client on 127.0.0.1 (the host's forwarder). Each round trip through a
 * link costs about 0.7 ms more than loopback on a loaded 2-core machine, and a link carries about a third of
 * loopback's requests per second (scripts/bench_netns.ts).
 *
 * @example Cut a service off from Postgres, then heal
 * ```ts ignore
 * import { isolate } from "./netns.ts";
 * await using net = await isolate({ links: { postgres: { outbound: [5432] } } });
 * const child = net.spawn(Deno.execPath(), ["run", "-A", "services/orders/main.ts"]);
 * await net.partition("postgres");
 * await net.heal("postgres");
 * ```
 */
export class IsolatedNetwork implements AsyncDisposable {
  readonly #links: Map<string, LinkDevices>;
  readonly #hostForwarder: Forwarder;
  readonly #routerForwarder: Forwarder;
  readonly #children = new Set<Deno.ChildProcess>();
  #disposed = false;

  /** Use {@linkcode isolate}. */
  constructor(
    /** The namespace's name (`trellis-<pid>-<hex>`), for `ip netns exec` by hand. */
    readonly name: string,
    links: Map<string, LinkDevices>,
    hostForwarder: Forwarder,
    routerForwarder: Forwarder,
  ) {
    this.#links = links;
    this.#hostForwarder = hostForwarder;
    this.#routerForwarder = routerForwarder;
  }

  /**
   * Starts `command` inside the namespace (through `ip netns exec`). The process sees its own loopback, on which
   * the links' outbound ports reach the host. It is killed (SIGKILL) on disposal if still running.
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
    const answer = await this.#routerForwarder.command(JSON.stringify(command));
    if (answer !== "ok") throw new Error(`Cannot add latency to link "${link}": the forwarder answered ${answer}`);
  }

  /**
   * Drops every IP packet on `link` until {@linkcode heal}: open connections hang (their TCP retransmits are dropped
   * too) and new connections across the link do not complete. `direction` makes it one-way: `"outgoing"` drops what
   * the isolated process sends (its requests never arrive), `"incoming"` what is sent to it (its requests are served
   * but the answers are lost). Partitioning a link again adds the new direction.
   *
   * @example Cut the service off from Postgres only
   * ```ts ignore
   * await net.partition("postgres");
   * ```
   * @example Lose the answers only: a write commits, the service never hears of it
   * ```ts ignore
   * await net.partition("postgres", { direction: "incoming" });
   * ```
   */
  async partition(link: string, options: PartitionOptions = {}): Promise<void> {
    this.#assertOpen("partition");
    const devices = this.#link(link, "partition");
    const direction = options.direction ?? "both";
    const hooks = Object.hasOwn(HOOKS, direction) ? HOOKS[direction] : undefined;
    if (!hooks) {
      throw new RangeError(
        `Cannot partition as direction ${
          JSON.stringify(direction)
        }: current value is not "both", "incoming" or "outgoing"`,
      );
    }
    for (const hook of hooks) {
      if (devices.dropping.has(hook)) continue;
      // Redirecting to a device that is down drops the packet: this kernel has neither netem nor gact. ARP passes
      // (protocol ip), so that traffic resumes as soon as the link heals.
      await run("tc", [
        ...["-n", this.#router, "filter", "add", "dev", devices.device, hook, "protocol", "ip", "pref", "1"],
        ...["u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", SINK],
      ]);
      devices.dropping.add(hook);
    }
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
    for (const hook of devices.dropping) {
      await run("tc", ["-n", this.#router, "filter", "del", "dev", devices.device, hook, "pref", "1"]);
      devices.dropping.delete(hook);
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
      await within(child.status, 10_000, "a spawned process to die after SIGKILL");
    }));
    await Promise.all([this.#hostForwarder.close(), this.#routerForwarder.close()]);
    await removeNamespaces(this.name);
  }

  get #router(): string {
    return `${this.name}${ROUTER_SUFFIX}`;
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
 * Creates a network namespace in which {@linkcode IsolatedNetwork.spawn} runs processes whose TCP traffic to and
 * from `127.0.0.1:<port>` crosses one veth pair per named link, so a test can slow down or cut one link. Needs root
 * and iproute2 (`ip`, `tc`); starts two forwarder processes (on the host and in the router namespace). Only TCP to
 * 127.0.0.1 on the listed ports leaves the namespace (e.g. `localhost` resolving to `::1` does not).
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
  const router = `${name}${ROUTER_SUFFIX}`;
  const hostDevice = hostDeviceOf(name);
  const links = new Map<string, LinkDevices>();
  const hostSide: ForwardSpec[] = [];
  const routerSide: ForwardSpec[] = [];
  let hostForwarder: Forwarder | undefined;
  let routerForwarder: Forwarder | undefined;
  try {
    for (const ns of [name, router]) {
      await run("ip", ["netns", "add", ns]);
      await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
    }
    // The router reaches the host over one veth pair that no fault touches.
    await run("ip", ["link", "add", hostDevice, "type", "veth", "peer", "name", "host", "netns", router]);
    const [hostIp, routerIp] = freeSubnet(await takenSubnets());
    await run("ip", ["addr", "add", `${hostIp}/30`, "dev", hostDevice]);
    await run("ip", ["link", "set", hostDevice, "up"]);
    await run("ip", ["-n", router, "addr", "add", `${routerIp}/30`, "dev", "host"]);
    await run("ip", ["-n", router, "link", "set", "host", "up"]);
    // Left down: tc redirects the packets of a partitioned link to it, which drops them.
    await run("ip", ["-n", router, "link", "add", SINK, "type", "veth", "peer", "name", `${SINK}-peer`]);
    const sysctls = [["all", "rp_filter", "0"], ["default", "rp_filter", "0"]];
    const routerSysctls = [...sysctls];
    const local = "127.0.0.1";
    for (const [i, [linkName, link]] of entries.entries()) {
      // Link i is the veth pair r<i> (router) – p<i> (process), 10.0.<i>.1 – 10.0.<i>.2: private to the two
      // namespaces, so these addresses cannot clash with the host's.
      const [r, pr, rIp, pIp, table] = [`r${i}`, `p${i}`, `10.0.${i}.1`, `10.0.${i}.2`, String(100 + i)];
      await run("ip", ["-n", router, "link", "add", r, "type", "veth", "peer", "name", pr, "netns", name]);
      await run("ip", ["-n", router, "addr", "add", `${rIp}/30`, "dev", r]);
      await run("ip", ["-n", router, "link", "set", r, "up"]);
      await run("ip", ["-n", name, "addr", "add", `${pIp}/30`, "dev", pr]);
      await run("ip", ["-n", name, "link", "set", pr, "up"]);
      await run("tc", ["-n", router, "qdisc", "add", "dev", r, "clsact"]);
      // 127.0.0.1 may cross these devices (route_localnet): a connection to 127.0.0.1:<port> is routed by port.
      sysctls.push([pr, "route_localnet", "1"], [pr, "rp_filter", "0"]);
      routerSysctls.push([r, "route_localnet", "1"], [r, "rp_filter", "0"]);
      links.set(linkName, { name: linkName, device: r, dropping: new Set() });
      for (const port of link.outbound ?? []) {
        await run("ip", ["-n", name, "rule", "add", ...portRule(port, table)]);
        routerSide.push({ listen: { hostname: local, port }, connect: { hostname: hostIp, port }, link: linkName });
        hostSide.push({ listen: { hostname: hostIp, port }, connect: { hostname: local, port }, link: linkName });
      }
      for (const port of link.inbound ?? []) {
        await run("ip", ["-n", router, "rule", "add", ...portRule(port, table)]);
        hostSide.push({ listen: { hostname: local, port }, connect: { hostname: routerIp, port }, link: linkName });
        routerSide.push({ listen: { hostname: routerIp, port }, connect: { hostname: local, port }, link: linkName });
      }
      if (link.outbound?.length) {
        await run("ip", ["-n", name, "route", "add", `${local}/32`, "via", rIp, "dev", pr, "src", pIp, "table", table]);
      }
      if (link.inbound?.length) {
        await run("ip", [
          "-n",
          router,
          "route",
          "add",
          `${local}/32`,
          "via",
          pIp,
          "dev",
          r,
          "src",
          rIp,
          "table",
          table,
        ]);
      }
    }
    for (const [ns, settings] of [[name, sysctls], [router, routerSysctls]] as const) {
      const writes = settings.map(([device, key, value]) => `echo ${value} > /proc/sys/net/ipv4/conf/${device}/${key}`);
      await run("ip", ["netns", "exec", ns, "sh", "-c", writes.join(" && ")]);
      // The port rules must come before the local table, which would otherwise deliver 127.0.0.1 on lo.
      await run("ip", ["-n", ns, "rule", "add", "pref", "100", "table", "local"]);
      await run("ip", ["-n", ns, "rule", "del", "pref", "0"]);
    }
    const [host, inRouter] = await Promise.allSettled([
      Forwarder.start([], hostSide),
      Forwarder.start(["netns", "exec", router], routerSide),
    ]);
    if (host.status === "fulfilled") hostForwarder = host.value;
    if (inRouter.status === "fulfilled") routerForwarder = inRouter.value;
    if (host.status === "rejected") throw host.reason;
    if (inRouter.status === "rejected") throw inRouter.reason;
    return new IsolatedNetwork(name, links, host.value, inRouter.value);
  } catch (err) {
    await Promise.all([hostForwarder?.close(), routerForwarder?.close()]);
    await removeNamespaces(name).catch(() => {});
    throw err;
  }
}

/** The host's end of the veth pair to the router of namespace `trellis-<pid>-<hex>`: `tr<hex>`. */
function hostDeviceOf(name: string): string {
  return `tr${name.split("-").at(-1)}`;
}

/** `ip rule` arguments sending TCP to 127.0.0.1:<port> to `table`. */
function portRule(port: number, table: string): string[] {
  return ["pref", "10", "to", "127.0.0.1", "ipproto", "tcp", "dport", String(port), "table", table];
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
    this.#lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream())
      [Symbol.asyncIterator]();
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
      const said = await within(stderr, 5_000, "the failed forwarder's stderr to close");
      throw new Error(`Cannot start a forwarder for ${forwards.length} ports: ${err}\n${said}`);
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
    const next = await within(this.#lines.next(), timeoutMs, "the forwarder's answer");
    if (next.done) throw new Error("it exited");
    return next.value;
  }

  /** Ends its stdin (it exits on that), SIGKILL if it has not exited within 5 s. */
  async close(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    await within(this.#child.status, 5_000, "the forwarder to exit at the end of its stdin").catch(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // exited meanwhile
      }
    });
    await within(this.#child.status, 5_000, "the forwarder to die after SIGKILL");
    await this.#lines.return?.();
  }
}

/**
 * Kills what still runs in the process namespace `name` and its router, then deletes both (which deletes the veth
 * pairs: each has an end in one of them).
 */
async function removeNamespaces(name: string): Promise<void> {
  const namespaces = [name, `${name}${ROUTER_SUFFIX}`];
  for (const ns of namespaces) {
    const pids = await output("ip", ["netns", "pids", ns]).catch(() => "");
    for (const pid of pids.split(/\s+/).filter(Boolean)) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch {
        // exited meanwhile
      }
    }
  }
  // Deleting a namespace frees its devices later, in a kernel work queue: the host's end goes now.
  await run("ip", ["link", "del", hostDeviceOf(name)]).catch(() => {});
  const failures = [];
  for (const ns of namespaces) {
    const out = await within(
      new Deno.Command(tool("ip"), { args: ["netns", "del", ns], stdout: "null", stderr: "piped" }).output(),
      30_000,
      `ip netns del ${ns}`,
    );
    const reason = new TextDecoder().decode(out.stderr);
    if (!out.success && !reason.includes("No such file")) failures.push(`${ns}: ${reason.trim()}`);
  }
  if (failures.length > 0) throw new Error(`Cannot remove namespaces: ${failures.join("; ")}`);
}

/**
 * Options for {@linkcode removeStaleNamespaces}.
 *
 * @example Remove everything a crashed run left
 * ```ts
 * import type { RemoveStaleOptions } from "./netns.ts";
 * const options: RemoveStaleOptions = { olderThanMs: 0 };
 * ```
 */
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
    const match = entry.name.match(/^trellis-(\d+)-[0-9a-f]+$/);
    if (!match) continue;
    const creatorAlive = await Deno.stat(`/proc/${match[1]}`).then(() => true, () => false);
    const { mtime } = await Deno.stat(`/run/netns/${entry.name}`);
    if (creatorAlive || !mtime || Date.now() - mtime.getTime() < olderThanMs) continue;
    await removeNamespaces(entry.name);
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
  const out = await within(
    new Deno.Command(tool(name), { args, stdin: "null", stdout: "piped", stderr: "piped" }).output(),
    30_000,
    `${name} ${args.join(" ")}`,
  );
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
