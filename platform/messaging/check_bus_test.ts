import assert from "node:assert/strict";
import { createLogger } from "../log/mod.ts";
import { Service } from "../service/mod.ts";
import { createMemoryBroker } from "./adapters/memory.ts";
import { checkBus } from "./check_bus.ts";
import type { PubSub } from "./message.ts";

const quiet = createLogger("test", { level: "error", write: () => {} });

Deno.test("checkBus() names the bus in /readyz while its broker does not answer, and turns ready again by itself", async () => {
  const broker = createMemoryBroker({ logger: quiet });
  let down = false;
  const bus: PubSub = {
    features: broker.features,
    publish: (topic, msg) => broker.publish(topic, msg),
    subscribe: (topic, handler, options) => broker.subscribe(topic, handler, options),
    ping: (signal) => down ? Promise.reject(new Error("broker does not answer")) : broker.ping(signal),
    close: () => broker.close(),
  };
  const svc = new Service({ name: "check-bus-test", logger: quiet, checkCacheMs: 0 });
  checkBus(svc, "events", () => Promise.resolve(bus));
  await svc.start();
  const readyz = async () => {
    const res = await fetch(`${svc.url}/readyz`);
    return { status: res.status, body: await res.json() };
  };
  try {
    assert.equal((await readyz()).status, 200);
    down = true;
    const failing = await readyz();
    assert.equal(failing.status, 503);
    assert.equal(failing.body.checks.events.ok, false);
    assert.match(failing.body.checks.events.error, /broker does not answer/);
    down = false;
    assert.equal((await readyz()).status, 200);
  } finally {
    await svc.stop();
    await bus.close();
  }
});
