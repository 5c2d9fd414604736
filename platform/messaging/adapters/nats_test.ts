import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { createLogger } from "../../log/mod.ts";
import { createNatsPubSub, natsFeatures } from "./nats.ts";
import { reply } from "../message.ts";
import { type ConformanceTarget, startInfraBroker, testPubSubConformance } from "../testing/mod.ts";
import { startNats, within } from "../../testing/mod.ts";

const servers = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";
const quiet = createLogger("messaging", { write: () => {} });

async function natsTarget(url = servers): Promise<ConformanceTarget> {
  const bus = await createNatsPubSub({ servers: url, logger: quiet });
  return { publisher: bus, subscriber: bus };
}

testPubSubConformance("nats", () => natsTarget(), natsFeatures, {
  async restartableBroker() {
    const broker = await startInfraBroker("nats");
    return { ...broker, connect: () => natsTarget(`nats://127.0.0.1:${broker.port}`) };
  },
});

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("createNatsPubSub() delivers to wildcard subscriptions", async () => {
  const bus = await createNatsPubSub({ servers, logger: quiet });
  const base = `wild.${crypto.randomUUID().slice(0, 8)}`;
  const got: string[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  await bus.subscribe(`${base}.*.created`, (m) => {
    got.push(m.id);
    if (got.length === 2) resolve();
  });
  await bus.publish(`${base}.orders.created`, { id: "a", payload: enc("") });
  await bus.publish(`${base}.orders.updated`, { id: "skip", payload: enc("") });
  await bus.publish(`${base}.payments.created`, { id: "b", payload: enc("") });
  await within(promise, 5_000, "the two messages matching the wildcard");
  await bus.close();
  deepStrictEqual(got, ["a", "b"]);
});

Deno.test("createNatsPubSub() drops a message whose handler threw and logs it", async () => {
  const lines: string[] = [];
  const bus = await createNatsPubSub({ servers, logger: createLogger("messaging", { write: (l) => lines.push(l) }) });
  const topic = `drop.${crypto.randomUUID().slice(0, 8)}`;
  const attempts: string[] = [];
  const { promise, resolve } = Promise.withResolvers<void>();
  await bus.subscribe(topic, (m) => {
    attempts.push(m.id);
    if (m.id === "bad") throw new Error("boom");
    resolve();
  });
  await bus.publish(topic, { id: "bad", payload: enc("") });
  await bus.publish(topic, { id: "good", payload: enc("") });
  await within(promise, 5_000, "the message after the one whose handler threw");
  await bus.close();
  deepStrictEqual(attempts, ["bad", "good"]);
  strictEqual(lines.some((l) => l.includes("message dropped") && l.includes('"messageId":"bad"')), true);
});

Deno.test("createNatsPubSub() leaves a shared connection open on close()", async () => {
  const nc = await connect({ servers });
  const bus = await createNatsPubSub({ connection: nc, logger: quiet });
  await bus.subscribe(`shared.${crypto.randomUUID().slice(0, 8)}`, async () => {});
  await bus.close();
  strictEqual(nc.isClosed(), false);
  await nc.close();
});

Deno.test("createNatsPubSub() drops messages beyond maxPendingMessages while its handlers are busy, and logs it", async () => {
  const lines: string[] = [];
  const bus = await createNatsPubSub({
    servers,
    maxPendingMessages: 5,
    logger: createLogger("messaging", { write: (l) => lines.push(l) }),
  });
  const topic = `pending.${crypto.randomUUID().slice(0, 8)}`;
  const gate = Promise.withResolvers<void>();
  const handled: string[] = [];
  await bus.subscribe(topic, async (m) => {
    await within(gate.promise, 10_000, "the test to open the handler's gate");
    handled.push(m.id);
  });
  await Promise.all(Array.from({ length: 20 }, (_, i) => bus.publish(topic, { id: `m${i}`, payload: enc("") })));
  await new Promise((resolve) => setTimeout(resolve, 200));
  gate.resolve();
  await bus.close();
  deepStrictEqual(handled, ["m0", "m1", "m2", "m3", "m4", "m5"]);
  strictEqual(lines.some((l) => l.includes("dropping messages")), true);
  strictEqual(lines.some((l) => l.includes('"dropped":14')), true);
});

Deno.test("createNatsPubSub() close() while its server is SIGKILLed resolves and ends the connection's reconnecting", async () => {
  await using nats = await startNats();
  const bus = await createNatsPubSub({ servers: nats.url, logger: quiet });
  await bus.subscribe(`gone.${crypto.randomUUID().slice(0, 8)}`, () => {}, { group: "g" });
  await nats.kill();
  await rejects(bus.ping(AbortSignal.timeout(1000)));
  const started = performance.now();
  await bus.close();
  strictEqual(performance.now() - started < 10_000, true, "close() took too long");
  // The resource sanitizer fails this test if the connection kept reconnecting (a socket or timer left open).
});

Deno.test("createNatsPubSub() answers requests of plain NATS clients and gets replies from plain NATS responders", async () => {
  const nc = await connect({ servers });
  const bus = await createNatsPubSub({ servers, logger: quiet });
  const topic = `interop.${crypto.randomUUID().slice(0, 8)}`;
  await bus.subscribe(
    `${topic}.adapter`,
    (m) => reply(m, { payload: enc(`re: ${new TextDecoder().decode(m.payload)}`) }),
  );
  const raw = nc.subscribe(`${topic}.raw`, {
    callback: (_err, m) => {
      m.respond(enc("raw answer"));
    },
  });
  await nc.flush();
  const fromAdapter = await within(nc.request(`${topic}.adapter`, enc("hi"), { timeout: 2_000 }), 3_000, "a reply");
  strictEqual(new TextDecoder().decode(fromAdapter.data), "re: hi");
  const fromRaw = await within(bus.request(`${topic}.raw`, { payload: enc("hi") }), 3_000, "a raw reply");
  strictEqual(new TextDecoder().decode(fromRaw.payload), "raw answer");
  raw.unsubscribe();
  await bus.close();
  await nc.close();
});
