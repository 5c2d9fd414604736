// Proves scripts/infra.sh can bring up PostgreSQL, NATS and Kafka from nothing on unused ports, that `up` is
// idempotent, and that `down` stops exactly what it started while the shared instances keep running.
import assert from "node:assert/strict";
import postgres from "postgres";
import { connect } from "@nats-io/transport-node";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { within } from "@trellis/platform/testing";

const SCRIPT = new URL("../../scripts/infra.sh", import.meta.url).pathname;
const HOST = "127.0.0.1";
const SHARED_PG_PORT = 5432;
const SHARED_NATS_PORT = 4222;

interface Ports {
  pg: number;
  nats: number;
  kafka: number;
  kafkaController: number;
}

interface InfraRun {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Ports the kernel just handed out and nobody listens on; all held at once so they are distinct. */
function freePorts(): Ports {
  const listeners = Array.from({ length: 4 }, () => Deno.listen({ hostname: HOST, port: 0 }));
  const [pg, nats, kafka, kafkaController] = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return { pg, nats, kafka, kafkaController };
}

async function answers(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: HOST, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

async function setup() {
  const ports = freePorts();
  const infraDir = await Deno.makeTempDir({ prefix: "trellis-infra-test-" });
  const env = {
    TRELLIS_PG_PORT: String(ports.pg),
    TRELLIS_NATS_PORT: String(ports.nats),
    TRELLIS_KAFKA_PORT: String(ports.kafka),
    TRELLIS_KAFKA_CONTROLLER_PORT: String(ports.kafkaController),
    TRELLIS_INFRA_DIR: infraDir,
  };
  const infra = async (...args: string[]): Promise<InfraRun> => {
    const started = performance.now();
    // Generous: the first `up` may install a server (apt-get, a Kafka download) before starting it.
    const out = await within(
      new Deno.Command("bash", { args: [SCRIPT, ...args], env, stdout: "piped", stderr: "piped" }).output(),
      600_000,
      `infra.sh ${args.join(" ")}`,
    );
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      seconds: (performance.now() - started) / 1000,
    };
  };
  return {
    ports,
    infra,
    async [Symbol.asyncDispose]() {
      const down = await infra("down");
      if (down.code !== 0) console.error(`infra.sh down failed:\n${down.stdout}${down.stderr}`);
      await Deno.remove(infraDir, { recursive: true });
    },
  };
}

async function assertPostgresAnswers(port: number) {
  const sql = postgres({ host: HOST, port, user: "postgres", database: "postgres", max: 1, onnotice: () => {} });
  try {
    const rows = await sql`select 1 as one`;
    assert.equal(rows[0].one, 1);
  } finally {
    await sql.end();
  }
}

async function assertNatsAnswers(port: number) {
  const nc = await connect({ servers: `${HOST}:${port}` });
  try {
    const subject = `infra.test.${crypto.randomUUID()}`;
    const got = Promise.withResolvers<string>();
    nc.subscribe(subject, { max: 1, callback: (err, msg) => err ? got.reject(err) : got.resolve(msg.string()) });
    nc.publish(subject, "ping");
    assert.equal(await within(got.promise, 5_000, "the NATS message on a fresh subject"), "ping");
    // infra.sh starts nats-server with -js; the JetStream API answers only when it is enabled.
    const info = (await nc.request("$JS.API.INFO", undefined, { timeout: 2000 })).json<{ error?: unknown }>();
    assert.equal(info.error, undefined);
  } finally {
    await nc.close();
  }
}

async function assertKafkaAnswers(port: number) {
  const kafka = new Kafka({ clientId: "infra-test", brokers: [`${HOST}:${port}`], logLevel: logLevel.NOTHING });
  const topic = `infra-test-${crypto.randomUUID()}`;
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  const consumer = kafka.consumer({ groupId: `infra-test-${crypto.randomUUID()}` });
  try {
    await producer.connect();
    // the topic does not exist yet: this relies on auto.create.topics.enable
    await producer.send({ topic, messages: [{ value: "hello" }] });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = Promise.withResolvers<string>();
    await consumer.run({
      eachMessage: ({ message }) => {
        received.resolve(message.value?.toString() ?? "");
        return Promise.resolve();
      },
    });
    assert.equal(await within(received.promise, 30_000, "the Kafka message on an auto-created topic"), "hello");
  } finally {
    await consumer.disconnect();
    await producer.disconnect();
  }
}

Deno.test("infra.sh brings postgres, nats and kafka up from nothing on free ports and down again", async (t) => {
  await using env = await setup();
  const { ports, infra } = env;

  await t.step("the chosen ports are free before up", async () => {
    for (const port of Object.values(ports)) assert.equal(await answers(port), false, `port ${port} is in use`);
  });

  await t.step("up starts all three components and exits 0", async () => {
    const up = await infra("up");
    console.log(`infra.sh up (${up.seconds.toFixed(1)} s):\n${up.stdout}`);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    assert.match(up.stdout, /postgres .* started \(pid \d+, durable\)/);
  });

  await t.step("postgres answers select 1", () => assertPostgresAnswers(ports.pg));
  await t.step("nats delivers a published message and has JetStream on", () => assertNatsAnswers(ports.nats));
  await t.step("kafka delivers a produced message to a consumer", () => assertKafkaAnswers(ports.kafka));

  await t.step("a second up reports every component already running and is fast", async () => {
    const again = await infra("up");
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.equal(again.stdout.match(/already running \(pid \d+[,)]/g)?.length, 3, again.stdout);
    assert.ok(again.seconds < 5, `second up took ${again.seconds.toFixed(1)} s`);
  });

  await t.step("status exits 0 and shows a pid for each component", async () => {
    const status = await infra("status");
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.equal(status.stdout.match(/running .* pid \d+/g)?.length, 3, status.stdout);
  });

  await t.step("down stops them so their ports no longer answer", async () => {
    const down = await infra("down");
    assert.equal(down.code, 0, down.stdout + down.stderr);
    for (const port of [ports.pg, ports.nats, ports.kafka]) {
      assert.equal(await answers(port), false, `port ${port} still answers after down`);
    }
  });

  await t.step("status exits non-zero once everything is down", async () => {
    const status = await infra("status");
    assert.notEqual(status.code, 0, status.stdout);
    assert.equal(status.stdout.match(/stopped/g)?.length, 3, status.stdout);
  });

  await t.step("a second down is a no-op", async () => {
    const down = await infra("down");
    assert.equal(down.code, 0, down.stdout + down.stderr);
    assert.equal(down.stdout.match(/not running/g)?.length, 3, down.stdout);
  });

  await t.step("the shared postgres on 5432 and nats on 4222 still answer", async () => {
    await assertPostgresAnswers(SHARED_PG_PORT);
    await assertNatsAnswers(SHARED_NATS_PORT);
  });
});
