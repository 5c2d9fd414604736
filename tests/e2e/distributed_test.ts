import assert from "node:assert/strict";
import { startCluster } from "../support/cluster.ts";
import { orderScenarios } from "./scenarios.ts";

Deno.test("distributed mode: six processes on Postgres, Kafka and NATS confirm, cancel and refuse orders, then stop cleanly on SIGTERM", async (t) => {
  await using cluster = await startCluster();
  try {
    await orderScenarios(t, cluster.endpoints);
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
