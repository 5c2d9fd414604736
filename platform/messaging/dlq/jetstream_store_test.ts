import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { createLogger } from "../../log/mod.ts";
import { createJetStreamPubSub } from "../adapters/jetstream.ts";
import type { PubSub } from "../message.ts";
import { testDeadLetterQueueConformance } from "./_conformance.ts";

const servers = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";

testDeadLetterQueueConformance("openDeadLetterQueue() on JetStream", async () => {
  const bus = await createJetStreamPubSub({ servers, logger: createLogger("messaging", { write: () => {} }) });
  const topics = new Set<string>();
  const tracked: PubSub = {
    features: bus.features,
    deadLetters: bus.deadLetters,
    publish(topic, msg) {
      topics.add(topic);
      return bus.publish(topic, msg);
    },
    subscribe: (topic, handler, options) => bus.subscribe(topic, handler, options),
    close: () => bus.close(),
  };
  return {
    bus: tracked,
    async close() {
      await bus.close();
      // Leave nothing behind on the shared server.
      const nc = await connect({ servers });
      try {
        const jsm = await jetstreamManager(nc);
        for (const topic of topics) {
          const name = await jsm.streams.find(topic).catch(() => undefined);
          if (name) await jsm.streams.delete(name);
        }
      } finally {
        await nc.close();
      }
    },
  };
});
