import assert from "node:assert/strict";
import { isolate, type IsolatedNetwork, removeStaleNamespaces } from "./netns.ts";
import { TextLineStream } from "./text_line_stream.ts";
import { within } from "./bounded.ts";

const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";
const PG_PORT = Number(new URL(DATABASE_URL).port || 5432);
const ROOT = new URL("../../", import.meta.url).pathname;

/** Reads lines from a stream; each wait is bounded, and a line that arrives after a timeout is kept for the next read. */
class LineReader {
  readonly #lines: AsyncIterator<string>;
  #pending: Promise<IteratorResult<string>> | undefined;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#lines = stream.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream())[Symbol.asyncIterator]();
  }

  /** The next line, or undefined if none came within `ms` (or the stream ended). */
  async next(ms: number): Promise<string | undefined> {
    this.#pending ??= this.#lines.next();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), ms));
    const result = await Promise.race([this.#pending, timeout]);
    clearTimeout(timer);
    if (result === "timeout") return undefined;
    this.#pending = undefined;
    return result.done ? undefined : result.value;
  }

  async drain(): Promise<void> {
    while (await this.next(10_000) !== undefined);
  }
}

/**
 * A `deno eval` process inside the namespace holding one Postgres connection: each line on its stdin is a statement
 * it runs, printing the round trip in ms.
 */
class PgProbe implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #out: LineReader;

  constructor(net: IsolatedNetwork) {
    const code = `
      import postgres from "postgres";
      const sql = postgres(${JSON.stringify(DATABASE_URL)}, { max: 1, onnotice: () => {} });
      let buffered = "";
      for await (const text of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
        buffered += text;
        let newline;
        while ((newline = buffered.indexOf("\\n")) >= 0) {
          const statement = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          const start = performance.now();
          await sql.unsafe(statement);
          console.log((performance.now() - start).toFixed(2));
        }
      }
      await sql.end({ timeout: 1 });`;
    this.#child = net.spawn(Deno.execPath(), ["eval", code], {
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    });
    this.#stdin = this.#child.stdin.getWriter();
    this.#out = new LineReader(this.#child.stdout);
  }

  /** Sends one statement (one line). */
  async send(statement = "select 1"): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(`${statement}\n`));
  }

  /** The round trip of the oldest query not yet answered, or undefined if it takes longer than `ms`. */
  async answer(ms: number): Promise<number | undefined> {
    const line = await this.#out.next(ms);
    return line === undefined ? undefined : Number(line);
  }

  /** Round trips of `n` queries one after the other, each bounded by 10 s. */
  async roundTrips(n: number): Promise<number[]> {
    const rtts = [];
    for (let i = 0; i < n; i++) {
      await this.send();
      const rtt = await this.answer(10_000);
      assert(rtt !== undefined, `query ${i + 1} of ${n} got no answer within 10 s`);
      rtts.push(rtt);
    }
    return rtts;
  }

  async [Symbol.asyncDispose]() {
    await this.#stdin.close().catch(() => {});
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5000);
    try {
      await this.#out.drain();
      await within(this.#child.status, 10_000, "the probe to exit");
    } finally {
      clearTimeout(timer);
    }
  }
}

function median(values: number[]): number {
  const sorted = values.toSorted((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function ipText(args: string[]): Promise<string> {
  const out = await within(
    new Deno.Command("/usr/sbin/ip", { args, stdout: "piped", stderr: "piped" }).output(),
    30_000,
    `ip ${args.join(" ")}`,
  );
  if (!out.success) throw new Error(`ip ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

Deno.test("latency() adds its round trip to queries from inside the namespace to the shared Postgres, and 0 removes it", async () => {
  await using net = await isolate({ links: { postgres: { outbound: [PG_PORT] } } });
  await using probe = new PgProbe(net);
  await probe.roundTrips(3); // connect and warm up
  const baseline = median(await probe.roundTrips(9));

  await net.latency("postgres", 100);
  const slowed = await probe.roundTrips(5);
  for (const rtt of slowed) assert.ok(rtt >= 100, `a query took ${rtt} ms with 100 ms latency`);
  // Below 200 ms: the latency is added once per round trip, not once per direction.
  assert.ok(median(slowed) < 195, `baseline ${baseline} ms, with 100 ms latency ${slowed} ms`);

  await net.latency("postgres", 0);
  const healed = median(await probe.roundTrips(5));
  assert.ok(healed < baseline + 50, `baseline ${baseline} ms, after latency 0: ${healed} ms`);
  console.log(`select 1 through the namespace: ${baseline} ms; with latency 100: ${median(slowed)} ms`);
});

Deno.test("partition() makes a query across the link hang, and heal() lets it and new queries through", async () => {
  await using net = await isolate({ links: { postgres: { outbound: [PG_PORT] } } });
  await using probe = new PgProbe(net);
  await probe.roundTrips(2);

  await net.partition("postgres");
  await probe.send();
  assert.equal(await probe.answer(1500), undefined, "a query answered across a partitioned link");

  await net.heal("postgres");
  const stuck = await probe.answer(10_000);
  assert(stuck !== undefined, "the query sent during the partition got no answer within 10 s of heal()");
  assert.equal((await probe.roundTrips(3)).length, 3);
});

/** Runs `statement` on the shared Postgres from the host with psql; its output without alignment. */
async function psql(statement: string): Promise<string> {
  const out = await within(
    new Deno.Command("psql", { args: [DATABASE_URL, "-Atc", statement], stdout: "piped", stderr: "piped" }).output(),
    30_000,
    `psql -c ${statement}`,
  );
  if (!out.success) throw new Error(`psql failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("partition() one way: incoming lets a write commit but loses its answer, outgoing keeps the write from arriving", async () => {
  const table = `netns_${crypto.randomUUID().replaceAll("-", "")}`;
  await psql(`create table ${table} (id int)`);
  try {
    await using net = await isolate({ links: { postgres: { outbound: [PG_PORT] } } });
    await using probe = new PgProbe(net);
    await probe.roundTrips(2);
    const count = async () => Number(await psql(`select count(*) from ${table}`));

    await net.partition("postgres", { direction: "incoming" });
    await probe.send(`insert into ${table} values (1)`);
    const deadline = Date.now() + 5000;
    while (await count() < 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(await count(), 1, "the write sent with incoming packets dropped did not commit within 5 s");
    assert.equal(await probe.answer(500), undefined, "the answer crossed a link dropping incoming packets");
    await net.heal("postgres");
    assert.ok(await probe.answer(10_000) !== undefined, "the answer did not arrive within 10 s of heal()");

    await net.partition("postgres", { direction: "outgoing" });
    await probe.send(`insert into ${table} values (2)`);
    assert.equal(await probe.answer(1500), undefined, "a write was answered across a link dropping outgoing packets");
    assert.equal(await count(), 1, "a write crossed a link dropping outgoing packets");
    await net.heal("postgres");
    assert.ok(await probe.answer(10_000) !== undefined, "the write did not complete within 10 s of heal()");
    assert.equal(await count(), 2);
    await assert.rejects(
      () => net.partition("postgres", { direction: "sideways" as "both" }),
      { name: "RangeError", message: /current value is not "both", "incoming" or "outgoing"/ },
    );
  } finally {
    await psql(`drop table ${table}`);
  }
});

Deno.test("partition() makes a new connection from inside hang in connect, as a real partition does, until heal()", async () => {
  await using net = await isolate({ links: { postgres: { outbound: [PG_PORT] } } });
  await net.partition("postgres");
  const child = net.spawn(Deno.execPath(), [
    "eval",
    `const conn = await Deno.connect({ hostname: "127.0.0.1", port: ${PG_PORT} });
    console.log("connected from", conn.localAddr.hostname);
    conn.close();`,
  ], { stdout: "piped", stderr: "inherit" });
  const out = new LineReader(child.stdout);
  assert.equal(await out.next(2000), undefined, "a connect across a partitioned link completed");

  await net.heal("postgres");
  // The next SYN retransmission (1 s, 3 s, 7 s after the first) gets through.
  assert.equal(await out.next(10_000), "connected from 10.0.0.2");
  assert.equal((await within(child.status, 5_000, "the connecting process to exit")).code, 0);
  await out.drain();
});

Deno.test("an inbound port reaches a server inside the namespace at 127.0.0.1:<port>, and faults on other links leave it alone", async () => {
  const port = freePort();
  await using net = await isolate({
    links: { postgres: { outbound: [PG_PORT] }, rest: { inbound: [port] } },
  });
  // The server answers with the inode of its network namespace, which proves where it runs.
  const server = net.spawn(Deno.execPath(), [
    "eval",
    `Deno.serve({ hostname: "127.0.0.1", port: ${port}, onListen: () => console.log("listening") },
      () => new Response(Deno.readLinkSync("/proc/self/ns/net")));`,
  ], { stdout: "piped", stderr: "inherit" });
  const out = new LineReader(server.stdout);
  assert.equal(await out.next(15_000), "listening", "the server inside did not start within 15 s");
  using client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  const get = async () => {
    const start = performance.now();
    const response = await fetch(`http://127.0.0.1:${port}/`, { client, signal: AbortSignal.timeout(10_000) });
    return { body: await response.text(), ms: performance.now() - start };
  };

  const { ino } = await Deno.stat(`/run/netns/${net.name}`);
  assert.equal((await get()).body, `net:[${ino}]`);
  assert(Deno.readLinkSync("/proc/self/ns/net") !== `net:[${ino}]`);

  await net.latency("postgres", 300);
  await net.partition("postgres");
  const other = await get();
  assert.ok(other.ms < 300, `a fault on link postgres slowed link rest: ${other.ms} ms`);

  await net.latency("rest", 100);
  const slowed = await get();
  assert.ok(slowed.ms >= 100, `a request with 100 ms latency took ${slowed.ms} ms`);

  await net.partition("rest");
  await assert.rejects(
    () => fetch(`http://127.0.0.1:${port}/`, { client, signal: AbortSignal.timeout(1000) }),
    { name: "TimeoutError" },
  );

  await net[Symbol.asyncDispose]();
  await out.drain();
});

Deno.test("outbound links carry NATS and Kafka (whose advertised listener is 127.0.0.1:<port>) from inside the namespace", async () => {
  const nats = new URL(Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222");
  const kafka = (Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(",")[0];
  await using net = await isolate({
    links: { nats: { outbound: [Number(nats.port)] }, kafka: { outbound: [Number(kafka.split(":")[1])] } },
  });
  const topic = `netns-${crypto.randomUUID()}`;
  // Creating a topic goes to the controller and producing to the partition leader: both are reached at the address
  // the broker advertises, which must work inside the namespace too.
  const code = `
    import { connect } from "@nats-io/transport-node";
    import { Kafka, logLevel } from "kafkajs";
    const nc = await connect({ servers: ${JSON.stringify(nats.href)}, timeout: 10_000 });
    nc.subscribe("netns.echo", { callback: (_, m) => m.respond(m.data) });
    const reply = await nc.request("netns.echo", "ping", { timeout: 10_000 });
    console.log("nats", reply.string());
    await nc.close();
    const client = new Kafka({ brokers: [${
    JSON.stringify(kafka)
  }], logLevel: logLevel.NOTHING, connectionTimeout: 10_000 });
    const admin = client.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: ${JSON.stringify(topic)}, numPartitions: 1 }], waitForLeaders: true });
    const producer = client.producer();
    await producer.connect();
    await producer.send({ topic: ${JSON.stringify(topic)}, messages: [{ value: "hello" }] });
    await producer.disconnect();
    const [offsets] = await admin.fetchTopicOffsets(${JSON.stringify(topic)});
    console.log("kafka", offsets.high);
    await admin.deleteTopics({ topics: [${JSON.stringify(topic)}] });
    await admin.disconnect();`;
  const child = net.spawn(Deno.execPath(), ["eval", code], { cwd: ROOT, stdout: "piped", stderr: "piped" });
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const out = await within(child.output(), 70_000, "the NATS and Kafka client inside the namespace to exit")
    .finally(() => clearTimeout(timer));
  const text = new TextDecoder();
  assert.equal(
    text.decode(out.stdout),
    "nats ping\nkafka 1\n",
    `the process inside exited ${out.code}${out.signal ? ` (${out.signal}, killed after 60 s)` : ""}: ${
      text.decode(out.stderr)
    }`,
  );
});

Deno.test("disposing an isolated network kills what it spawned and leaves no namespace and no veth", async () => {
  const net = await isolate({ links: { a: { outbound: [freePort()] }, b: { inbound: [freePort()] } } });
  const sleeper = net.spawn("sleep", ["60"]);
  const id = net.name.split("-").at(-1)!;
  assert((await ipText(["netns", "list"])).includes(net.name));
  assert((await ipText(["-o", "link"])).includes(`tr${id}`));

  await net[Symbol.asyncDispose]();

  assert.equal((await within(sleeper.status, 5_000, "the spawned sleep to die")).signal, "SIGKILL");
  assert(!(await ipText(["netns", "list"])).includes(net.name), "the namespace is still listed");
  assert(!(await ipText(["-o", "link"])).includes(`tr${id}`), "a veth is still listed");
  assert.throws(() => net.spawn("true"), { name: "TypeError", message: /disposed/ });
});

Deno.test("isolate() rejects a port forwarded twice, a port out of range, a link without ports and an unknown link", async () => {
  await assert.rejects(
    () => isolate({ links: { a: { outbound: [5432] }, b: { inbound: [5432] } } }),
    new RangeError('Cannot forward as port 5432 on link "b": current value is forwarded twice'),
  );
  await assert.rejects(() => isolate({ links: { a: { inbound: [70000] } } }), {
    name: "RangeError",
    message: /not in 1\.\.65535/,
  });
  await assert.rejects(() => isolate({ links: {} }), { name: "TypeError", message: /has no link/ });
  await assert.rejects(() => isolate({ links: { a: {} } }), { name: "RangeError", message: /carries no port/ });
  await using net = await isolate({ links: { a: { outbound: [freePort()] } } });
  await assert.rejects(
    () => net.partition("b"),
    new RangeError('Cannot partition as link "b": current value is not one of a'),
  );
});

Deno.test("isolate() fails with the forwarder's reason when an inbound port is taken on the host, and leaves nothing behind", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  const before = await ipText(["netns", "list"]);
  await assert.rejects(
    () => isolate({ links: { a: { inbound: [port] } } }),
    { message: new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${port} for link "a"`) },
  );
  assert.equal(await ipText(["netns", "list"]), before);
});

Deno.test("removeStaleNamespaces() removes trellis- namespaces whose creator is gone and keeps younger or owned ones", async () => {
  const dead = "trellis-99999-0badc0"; // above pid_max (32768 here), so its creator cannot be running
  const owned = `trellis-${Deno.pid}-0badc1`;
  for (const name of [dead, owned]) await ipText(["netns", "add", name]);
  try {
    assert.deepEqual(await removeStaleNamespaces(), [], "a namespace younger than an hour was removed");
    assert.ok((await removeStaleNamespaces({ olderThanMs: 0 })).includes(dead));
    const list = await ipText(["netns", "list"]);
    assert.ok(!list.includes(dead), "the stale namespace is still listed");
    assert.ok(list.includes(owned), "a namespace whose creator runs was removed");
  } finally {
    for (const name of [dead, owned]) await ipText(["netns", "del", name]).catch(() => {});
  }
});
