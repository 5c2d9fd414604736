import assert from "node:assert/strict";
import { startTraceReceiver } from "@trellis/platform/telemetry/receiver";
import { startCluster } from "../support/cluster.ts";
import { assertOrderTrace, traceOneOrder } from "../telemetry/order_trace.ts";
import { orderScenarios } from "./scenarios.ts";

Deno.test("distributed mode: six processes on Postgres, Kafka and NATS confirm, cancel and refuse orders, trace them, then stop cleanly on SIGTERM", async (t) => {
  // Traced as `deno task up` runs it (OTEL_DENO=true, exporting over OTLP/HTTP), to this process's receiver.
  await using receiver = startTraceReceiver();
  await using cluster = await startCluster({
    env: { OTEL_DENO: "true", OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url },
  });
  try {
    await orderScenarios(t, cluster.endpoints);
    await t.step("one order's trace crosses gRPC, SQL, the outbox, Kafka and NATS with every hop linked", async () => {
      const trace = await traceOneOrder(cluster.endpoints, receiver.url);
      const shape = assertOrderTrace(trace, { events: "kafka", jobs: "jetstream" });
      console.log(`distributed order trace: ${JSON.stringify(shape)}`);
      // Each process names itself (OTEL_SERVICE_NAME): Deno's own fetch spans are attributed to their service.
      assert.ok(trace.spans.some((s) => s.scope === "deno" && s.kind === "client" && s.service === "orders"));
    });
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
