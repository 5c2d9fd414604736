import assert from "node:assert/strict";
import { startCluster } from "../support/cluster.ts";
import { createKafkaPubSub } from "@trellis/platform/messaging";
import { Topics } from "../../services/shared/events.ts";
import { deadLetterScenario } from "./dead_letters.ts";
import { orderScenarios } from "./scenarios.ts";

Deno.test("distributed mode: six processes on Postgres, Kafka and NATS confirm, cancel and refuse orders, then stop cleanly on SIGTERM", async (t) => {
  await using cluster = await startCluster();
  try {
    await orderScenarios(t, cluster.endpoints);
    const kafka = createKafkaPubSub({ brokers: (Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092").split(",") });
    try {
      await deadLetterScenario(t, {
        auth: cluster.endpoints.auth,
        inventory: cluster.procs.find((p) => p.name === "inventory")!.url,
        opsSecret: Deno.env.get("OPS_CLIENT_SECRET") ?? "dev-only-ops-secret",
        publishCommand: (msg) => kafka.publish(cluster.topicPrefix + Topics.inventoryCommands, msg),
      });
    } finally {
      await kafka.close();
    }
  } catch (err) {
    for (const p of cluster.procs) console.error(`--- ${p.name} ---\n${await cluster.tail(p.name)}`);
    throw err;
  }
  await t.step("every service exits 0 on SIGTERM", async () => {
    const results = await cluster.stop();
    for (const r of results) {
      if (r.code !== 0) console.error(`--- ${r.name} ---\n${await cluster.tail(r.name)}`);
    }
    assert.deepEqual(results.filter((r) => r.code !== 0).map((r) => `${r.name} exited ${r.code}`), []);
  });
});
