import assert from "node:assert/strict";
import { migrate } from "../db/mod.ts";
import { freshDatabase } from "../db/testing/mod.ts";
import { createLogger } from "../log/mod.ts";
import { createMemoryBroker } from "../messaging/mod.ts";
import { Service } from "../service/mod.ts";
import { waitUntil } from "../testing/mod.ts";
import { enqueue, OUTBOX_MIGRATIONS } from "./enqueue.ts";
import { relayFor } from "./relay_for.ts";

const quiet = createLogger("test", { level: "error", write: () => {} });
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

Deno.test("relayFor() publishes through the routed bus and reports the backlog and a failing topic on /metrics", async () => {
  await using f = await freshDatabase();
  await migrate(f.db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
  const bus = createMemoryBroker({ logger: quiet });
  const svc = new Service({ name: "wiring-relay-test", logger: quiet });
  relayFor(
    svc,
    () => f.db,
    (topic) => topic === "dead.events" ? Promise.reject(new Error("broker down")) : Promise.resolve(bus),
  );
  const delivered: string[] = [];
  await bus.subscribe("live.events", (msg) => void delivered.push(msg.id), { group: "wiring" });
  await svc.start();
  const metrics = async () => await (await fetch(`${svc.url}/metrics`)).text();
  const liveId = crypto.randomUUID();
  try {
    await f.db.transaction(async (tx) => {
      for (const key of ["a", "b", "a"]) await enqueue(tx, { topic: "dead.events", key, payload: json({}) });
      await enqueue(tx, { topic: "live.events", id: liveId, payload: json({}) });
    });
    await waitUntil(() => delivered.length === 1, 5_000, "the live topic's message behind the dead one");
    assert.deepEqual(delivered, [liveId]);
    await waitUntil(async () => /^outbox_backlog\{[^}]*\} 3$/m.test(await metrics()), 5_000, "a backlog of 3");
    const text = await metrics();
    assert.match(text, /^outbox_topic_failing\{[^}]*topic="dead.events"[^}]*\} 1$/m);
    assert.doesNotMatch(text, /^outbox_topic_failing\{[^}]*topic="live.events"/m);
    assert.match(text, /^messaging_published_total\{[^}]*topic="live.events",outcome="ok"[^}]*\} 1$/m);
    assert.match(text, /^outbox_oldest_unpublished_age_seconds\{[^}]*\} \d/m);
    assert.match(text, /^outbox_database_reachable\{[^}]*\} 1$/m);
  } finally {
    await svc.stop();
    await bus.close();
  }
});
