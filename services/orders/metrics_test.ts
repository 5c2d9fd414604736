import assert from "node:assert/strict";
import { freshDatabase } from "@trellis/platform/db/testing";
import { OUTBOX_MIGRATIONS } from "@trellis/platform/outbox";
import { Service } from "@trellis/platform/service";
import { migrateService } from "../shared/infra.ts";
import { sagaMetrics } from "./metrics.ts";
import { applyReply, createOrder, expireOverdue } from "./store.ts";

const tea = { customerId: "alice", items: [{ sku: "tea", quantity: 1 }], totalCents: 450, paymentToken: "tok_visa" };

function sample(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) =>
    (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(labels)
  );
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

Deno.test("sagaMetrics() counts sagas started, confirmed and cancelled, times their steps and sees orders past their deadline", async () => {
  await using fx = await freshDatabase();
  await migrateService(fx.db, "orders", [OUTBOX_MIGRATIONS]);
  const svc = new Service({ name: "orders" });
  const sagas = sagaMetrics(svc, () => fx.db);
  const confirmed = (await createOrder(fx.db, { ...tea, deadlineMs: 60_000 })).order.id;
  sagas.started();
  const overdue = (await createOrder(fx.db, { ...tea, deadlineMs: 0 })).order.id;
  sagas.started();
  await applyReply(fx.db, crypto.randomUUID(), { type: "inventory.reserved.v1", orderId: confirmed }, sagas.applied);
  await applyReply(fx.db, crypto.randomUUID(), {
    type: "payments.succeeded.v1",
    orderId: confirmed,
    providerRef: "ch_1",
  }, sagas.applied);
  const before = await svc.registry.metrics();
  assert.equal(sample(before, "orders_sagas_past_deadline"), 1, "the overdue order, before the sweep");
  for (const e of await expireOverdue(fx.db)) sagas.expired(e);
  const text = await svc.registry.metrics();
  assert.equal(sample(text, "orders_sagas_started_total"), 2);
  assert.equal(sample(text, "orders_sagas_completed_total", 'outcome="confirmed"'), 1);
  assert.equal(sample(text, "orders_sagas_completed_total", 'outcome="cancelled"'), 1);
  assert.equal(sample(text, "orders_saga_step_duration_seconds_count", 'step="RESERVING"'), 1);
  assert.equal(sample(text, "orders_saga_step_duration_seconds_count", 'step="CHARGING"'), 1);
  assert.equal(sample(text, "orders_deadline_exceeded_total", 'step="RESERVING"'), 1);
  assert.equal(sample(text, "orders_sagas_past_deadline"), 0, overdue);
});
