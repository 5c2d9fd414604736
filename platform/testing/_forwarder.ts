/**
 * The TCP forwarder process behind `isolate()` (see `netns.ts`): one on the host and one in the router namespace,
 * run as `deno run --allow-net _forwarder.ts '<spec json>'`. Latency is added by the router's.
 *
 * Protocol with its parent: it prints `ready` on stdout once every listener is bound (or an error on stderr and
 * exits 1); then each JSON line on stdin (`{"link":"postgres","latencyMs":100}`) sets a link's added round-trip time
 * and is answered `ok`; end of stdin makes it exit, so a forwarder never outlives the test that started it.
 *
 * @module
 */

/** One listener and where its connections go. */
export interface ForwardSpec {
  listen: { hostname: string; port: number };
  connect: { hostname: string; port: number };
  /** The link whose latency applies to this forward's bytes. */
  link: string;
}

/** A latency command on stdin. */
export interface LatencyCommand {
  link: string;
  /** Added round-trip time: half of it delays each direction. */
  latencyMs: number;
}

/** Per-link state read for every chunk, so a change applies to connections already open. */
class Link {
  /** One-way delay, applied to each direction. */
  oneWayMs = 0;
}

function closeQuietly(conn: Deno.Conn) {
  try {
    conn.close();
  } catch {
    // already closed by the other direction
  }
}

/**
 * Copies both ways between an accepted connection and a new one to the forward's target. End of stream on one side
 * half-closes the other; an error on either side closes both, so a reset travels through the forwarder.
 */
async function bridge(accepted: Deno.TcpConn, spec: ForwardSpec, link: Link) {
  let target: Deno.TcpConn;
  try {
    target = await Deno.connect({ ...spec.connect, transport: "tcp" });
  } catch {
    closeQuietly(accepted);
    return;
  }
  accepted.setNoDelay(true);
  target.setNoDelay(true);
  const closeBoth = () => {
    closeQuietly(accepted);
    closeQuietly(target);
  };
  await Promise.all([
    copy(accepted, target, link, closeBoth).catch(closeBoth),
    copy(target, accepted, link, closeBoth).catch(closeBoth),
  ]);
  closeBoth();
}

/** Bytes a direction may hold back for latency before it stops reading (and so pushes back on the sender). */
const MAX_HELD_BYTES = 4 * 1024 * 1024;

/**
 * Copies `from` to `to` until end of stream, then shuts down `to`'s write side. With a delay, each chunk is written
 * at max(arrival + delay, write time of the chunk before it): order is kept, a lowered delay never reorders bytes,
 * and the copy stays pipelined (a 100 ms delay costs 100 ms once, not per chunk).
 *
 * A read/write loop rather than `readable.pipeTo(writable)`: through two forwarders, pipeTo carried about a third of
 * the requests per second this loop does (scripts/bench_netns.ts).
 */
async function copy(from: Deno.TcpConn, to: Deno.TcpConn, link: Link, onError: () => void) {
  const buffer = new Uint8Array(64 * 1024);
  let tail: Promise<void> = Promise.resolve();
  let lastDue = 0;
  let held = 0;
  for (;;) {
    const n = await from.read(buffer);
    if (n === null) break;
    if (link.oneWayMs === 0 && performance.now() >= lastDue) {
      await tail;
      await writeAll(to, buffer.subarray(0, n));
      continue;
    }
    const chunk = buffer.slice(0, n);
    const due = Math.max(performance.now() + link.oneWayMs, lastDue);
    lastDue = due;
    held += n;
    tail = tail.then(async () => {
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      await writeAll(to, chunk);
      held -= chunk.length;
    });
    tail.catch(onError);
    if (held > MAX_HELD_BYTES) await tail;
  }
  await tail;
  await to.closeWrite();
}

async function writeAll(to: Deno.TcpConn, chunk: Uint8Array) {
  for (let written = 0; written < chunk.length;) written += await to.write(chunk.subarray(written));
}

async function serve(listener: Deno.TcpListener, spec: ForwardSpec, link: Link) {
  for await (const conn of listener) bridge(conn, spec, link).catch((err) => console.error(`bridge: ${err}`));
}

async function control(links: Map<string, Link>) {
  const encoder = new TextEncoder();
  let buffered = "";
  for await (const text of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buffered += text;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const command = JSON.parse(buffered.slice(0, newline)) as LatencyCommand;
      buffered = buffered.slice(newline + 1);
      const link = links.get(command.link);
      if (link) link.oneWayMs = command.latencyMs / 2;
      await Deno.stdout.write(encoder.encode(link ? "ok\n" : `unknown link ${command.link}\n`));
    }
  }
}

if (import.meta.main) {
  const forwards = JSON.parse(Deno.args[0]) as ForwardSpec[];
  const links = new Map(forwards.map((f) => [f.link, new Link()]));
  const listeners = forwards.map((f) => {
    try {
      return Deno.listen({ ...f.listen, transport: "tcp" });
    } catch (err) {
      console.error(`Cannot listen on ${f.listen.hostname}:${f.listen.port} for link "${f.link}": ${err}`);
      Deno.exit(1);
    }
  });
  for (const [i, listener] of listeners.entries()) serve(listener, forwards[i], links.get(forwards[i].link)!);
  await Deno.stdout.write(new TextEncoder().encode("ready\n"));
  await control(links);
  Deno.exit(0);
}
