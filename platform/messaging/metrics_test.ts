import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { waitUntil } from "../testing/mod.ts";
import { createMemoryBroker } from "./adapters/memory.ts";
import { MessageRouter } from "./router.ts";
import { createLogger } from "../log/mod.ts";

const logger = createLogger("messaging", { write: () => {} });

function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

Deno.test("a router with a registry counts deliveries, failures, redeliveries and dead letters once per delivery", async () => {
  const bus = createMemoryBroker({ logger });
  const registry = new Registry();
  let calls = 0;
  const router = new MessageRouter({
    bus,
    registry,
    retry: { maxAttempts: 2, baseDelayMs: 1 },
    deadLetter: { maxAttempts: 2 },
  })
    .subscribe("orders.events", () => {
      calls++;
      throw new Error("always fails");
    }, { group: "billing" })
    .subscribe("orders.ok", () => {}, { group: "billing" });
  await router.start();
  try {
    await bus.publish("orders.events", { payload: new Uint8Array() });
    await bus.publish("orders.ok", { payload: new Uint8Array() });
    const labels = 'topic="orders.events",group="billing"';
    await waitUntil(
      async () => sample(await registry.metrics(), "messaging_dead_lettered_total", 'topic="orders.events"') === 1,
      5_000,
      "the message to be dead-lettered",
    );
    const text = await registry.metrics();
    assert.equal(calls, 4, "two deliveries of two in-place attempts each");
    assert.equal(sample(text, "messaging_consumed_total", `${labels},outcome="nack"`), 1);
    assert.equal(sample(text, "messaging_consumed_total", `${labels},outcome="ack"`), 1, "the dead-lettering ack");
    assert.equal(sample(text, "messaging_handler_failures_total", labels), 1);
    assert.equal(sample(text, "messaging_redeliveries_total", labels), 1);
    assert.equal(sample(text, "messaging_handler_duration_seconds_count", labels), 2);
    assert.equal(sample(text, "messaging_in_flight", labels), 0);
    assert.equal(sample(text, "messaging_published_total", 'topic="orders.events.dlq",outcome="ok"'), 1);
    assert.equal(sample(text, "messaging_consumed_total", 'topic="orders.ok",group="billing",outcome="ack"'), 1);
  } finally {
    await router.close();
    await bus.close();
  }
});

Deno.test("a router reports the lag its subscriptions tell, per topic, group and partition", async () => {
  const bus = createMemoryBroker({ logger });
  const registry = new Registry();
  const lagging = Object.create(bus);
  lagging.subscribe = async (...args: Parameters<typeof bus.subscribe>) => {
    const sub = await bus.subscribe(...args);
    return { close: () => sub.close(), lag: () => Promise.resolve([{ topic: args[0], partition: "3", messages: 7 }]) };
  };
  const router = new MessageRouter({ bus: lagging, registry }).subscribe("orders.events", () => {}, { group: "g" });
  await router.start();
  try {
    const text = await registry.metrics();
    assert.equal(sample(text, "messaging_consumer_lag_messages", 'topic="orders.events",group="g",partition="3"'), 7);
  } finally {
    await router.close();
    await bus.close();
  }
  assert.ok(!(await registry.metrics()).includes('partition="3"'), "a closed subscription's lag is gone");
});
