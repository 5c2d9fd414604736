import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { createLogger } from "../log/logger.ts";
import { createNatsPubSub, natsFeatures } from "./nats.ts";
import { testPubSubConformance } from "./testing/conformance.ts";

const servers = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";
const quiet = createLogger("messaging", { write: () => {} });

testPubSubConformance("nats", async () => {
  const bus = await createNatsPubSub({ servers, logger: quiet });
  return { publisher: bus, subscriber: bus };
}, natsFeatures);

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
  await promise;
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
  await promise;
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
