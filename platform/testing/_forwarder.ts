/**
 * The TCP forwarder process behind {@linkcode isolate} (see `netns.ts`): one process on each side of an isolated
 * namespace's veth pairs, run as `deno run --allow-net _forwarder.ts '<spec json>'`.
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

/**
 * Delays each chunk by the link's current one-way delay, keeping order: a chunk is released at
 * max(arrival + delay, release time of the chunk before it), so the stream stays pipelined (a 100 ms delay costs
 * 100 ms once, not per chunk) and a lowered delay never reorders bytes.
 */
function delayed(link: Link): TransformStream<Uint8Array, Uint8Array> {
  const queue: { chunk: Uint8Array; due: number }[] = [];
  let controller!: TransformStreamDefaultController<Uint8Array>;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let drained: (() => void) | undefined;
  const release = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0].due <= now) controller.enqueue(queue.shift()!.chunk);
    if (queue.length > 0) timer = setTimeout(release, queue[0].due - now);
    else drained?.();
  };
  return new TransformStream({
    start(c) {
      controller = c;
    },
    transform(chunk) {
      if (link.oneWayMs === 0 && queue.length === 0) {
        controller.enqueue(chunk);
        return;
      }
      const now = performance.now();
      const due = Math.max(now + link.oneWayMs, queue.at(-1)?.due ?? 0);
      queue.push({ chunk, due });
      timer ??= setTimeout(release, due - now);
    },
    flush() {
      if (queue.length === 0) return;
      return new Promise<void>((resolve) => drained = resolve);
    },
    cancel() {
      clearTimeout(timer);
      queue.length = 0;
    },
  });
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
 * half-closes the other (the streams' close is a TCP shutdown of the write side); an error on either side closes
 * both, so a reset travels through the forwarder.
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
  const copy = (from: Deno.TcpConn, to: Deno.TcpConn) =>
    from.readable.pipeThrough(delayed(link)).pipeTo(to.writable).catch(closeBoth);
  await Promise.all([copy(accepted, target), copy(target, accepted)]);
  closeBoth();
}

async function serve(listener: Deno.TcpListener, spec: ForwardSpec, link: Link) {
  for await (const conn of listener) bridge(conn, spec, link);
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
  let listeners: Deno.TcpListener[];
  try {
    listeners = forwards.map((f) => Deno.listen({ ...f.listen, transport: "tcp" }));
  } catch (err) {
    console.error(`Cannot listen: ${err}`);
    Deno.exit(1);
  }
  for (const [i, listener] of listeners.entries()) serve(listener, forwards[i], links.get(forwards[i].link)!);
  await Deno.stdout.write(new TextEncoder().encode("ready\n"));
  await control(links);
  Deno.exit(0);
}
