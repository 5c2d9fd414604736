import { throws } from "node:assert/strict";
import { createMemoryBroker } from "../adapters/memory.ts";
import { createNatsPubSub } from "../adapters/nats.ts";
import { openDeadLetterQueue } from "./dead_letter_queue.ts";
import { testDeadLetterQueueConformance } from "./_conformance.ts";

testDeadLetterQueueConformance("openDeadLetterQueue() on the in-memory broker", () => {
  const bus = createMemoryBroker();
  return Promise.resolve({ bus, close: () => bus.close() });
});

Deno.test("openDeadLetterQueue() refuses a bus that retains nothing, such as NATS Core", async () => {
  const bus = await createNatsPubSub({ servers: Deno.env.get("NATS_URL") });
  try {
    throws(() => openDeadLetterQueue(bus, "orders.events.dlq"), TypeError);
  } finally {
    await bus.close();
  }
});
