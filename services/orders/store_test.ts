import assert from "node:assert/strict";
import { type Database, migrate } from "@trellis/platform/db";
import { freshDatabase } from "@trellis/platform/db/testing";
import { OUTBOX_MIGRATIONS } from "@trellis/platform/outbox";
import { migrateService } from "../shared/infra.ts";
import { applyReply, createOrder, expireOverdue, getOrder } from "./store.ts";
import { within } from "@trellis/platform/testing";

/** A fresh Postgres database with the outbox's and the orders service's migrations applied. */
async function ordersDatabase() {
  const fixture = await freshDatabase();
  await migrateService(fixture.db, "orders", [OUTBOX_MIGRATIONS]);
  return fixture;
}

const tea = { customerId: "alice", items: [{ sku: "tea", quantity: 2 }], totalCents: 900, paymentToken: "tok_visa" };

/** `deadlineMs: 0` makes the order due at once; a minute keeps it out of every sweep in these tests. */
async function place(db: Database, deadlineMs: number): Promise<string> {
  return (await createOrder(db, { ...tea, deadlineMs })).order.id;
}

/** The messages written to the outbox for an order, in publish order, as `topic type` (the saga's start left out). */
async function sent(db: Database, orderId: string): Promise<string[]> {
  const rows = await db.query<{ topic: string; payload: string }>(
    "select topic, payload from outbox where key = $1 order by seq",
    [orderId],
  );
  return rows.map((r) => `${r.topic} ${JSON.parse(r.payload).type}`)
    .filter((m) => m !== "orders.events orders.created.v1" && m !== "inventory.commands inventory.reserve.v1");
}

Deno.test("createOrder() sets the deadline deadlineMs after the database's now", async () => {
  await using fx = await ordersDatabase();
  const [{ now }] = await fx.db.query<{ now: Date }>("select now()");
  const order = (await getOrder(fx.db, await place(fx.db, 90_000)))!;
  const ms = Date.parse(order.deadlineAt) - now.getTime();
  assert.ok(ms >= 90_000 && ms < 95_000, `deadline ${ms} ms after now`);
});

Deno.test("expireOverdue() cancels only PENDING orders past their deadline, each with its step's compensation", async () => {
  await using fx = await ordersDatabase();
  const reserving = await place(fx.db, 0);
  const charging = await place(fx.db, 0);
  await applyReply(fx.db, "m-1", { type: "inventory.reserved.v1", orderId: charging });
  const releasing = await place(fx.db, 0);
  await applyReply(fx.db, "m-2", { type: "inventory.reserved.v1", orderId: releasing });
  await applyReply(fx.db, "m-3", { type: "payments.failed.v1", orderId: releasing, reason: "card declined" });
  const confirmed = await place(fx.db, 0);
  await applyReply(fx.db, "m-4", { type: "inventory.reserved.v1", orderId: confirmed });
  await applyReply(fx.db, "m-5", { type: "payments.succeeded.v1", orderId: confirmed, providerRef: "ch_1" });
  const notDue = await place(fx.db, 60_000);

  const expired = await expireOverdue(fx.db);
  assert.deepEqual(expired.map((e) => e.orderId).sort(), [reserving, charging, releasing].sort());

  const view = async (id: string) => {
    const o = (await getOrder(fx.db, id))!;
    return { status: o.status, step: o.step, reason: o.reason };
  };
  assert.deepEqual(await view(reserving), {
    status: "CANCELLED",
    step: "DONE",
    reason: "deadline exceeded while RESERVING",
  });
  assert.deepEqual(await sent(fx.db, reserving), [
    "inventory.commands inventory.release.v1",
    "orders.events orders.cancelled.v1",
  ]);
  assert.deepEqual(await view(charging), {
    status: "CANCELLED",
    step: "DONE",
    reason: "deadline exceeded while CHARGING",
  });
  assert.deepEqual(await sent(fx.db, charging), [
    "payments.commands payments.charge.v1",
    "payments.commands payments.refund.v1",
    "inventory.commands inventory.release.v1",
    "orders.events orders.cancelled.v1",
  ]);
  assert.deepEqual(await view(releasing), { status: "CANCELLED", step: "DONE", reason: "card declined" });
  assert.deepEqual((await sent(fx.db, releasing)).slice(-2), [
    "inventory.commands inventory.release.v1",
    "orders.events orders.cancelled.v1",
  ]);
  assert.deepEqual(await view(confirmed), { status: "CONFIRMED", step: "DONE", reason: "" });
  assert.deepEqual(await view(notDue), { status: "PENDING", step: "RESERVING", reason: "" });
  assert.deepEqual(await sent(fx.db, notDue), []);
  assert.deepEqual(await expireOverdue(fx.db), [], "a second sweep finds nothing left to cancel");
});

Deno.test("expireOverdue() skips an order locked by a reply being applied and takes it in a later sweep", async () => {
  await using fx = await ordersDatabase();
  const locked = await place(fx.db, 0);
  const free = await place(fx.db, 0);
  let release!: () => void;
  const held = new Promise<void>((r) => release = r);
  let lockTaken!: () => void;
  const taken = new Promise<void>((r) => lockTaken = r);
  const holder = fx.db.transaction(async (tx) => {
    await tx.query("select id from orders where id = $1 for update", [locked]);
    lockTaken();
    await within(held, 10_000, "the test to release the row lock");
  });
  try {
    await within(taken, 5_000, "the holder to lock the order row");
    const first = await expireOverdue(fx.db);
    assert.deepEqual(first.map((e) => e.orderId), [free]);
  } finally {
    release();
    await within(holder, 5_000, "the lock-holding transaction to commit");
  }
  assert.deepEqual((await expireOverdue(fx.db)).map((e) => e.orderId), [locked]);
});

Deno.test("expireOverdue() cancels at most `limit` orders per call", async () => {
  await using fx = await ordersDatabase();
  for (let i = 0; i < 3; i++) await place(fx.db, 0);
  assert.equal((await expireOverdue(fx.db, 2)).length, 2);
  assert.equal((await expireOverdue(fx.db, 2)).length, 1);
});

Deno.test("applyReply() releases a reservation and refunds a charge that arrive after the deadline cancelled the order", async () => {
  await using fx = await ordersDatabase();
  const id = await place(fx.db, 0);
  await expireOverdue(fx.db);
  const before = await sent(fx.db, id);

  assert.equal(await applyReply(fx.db, "late-1", { type: "inventory.reserved.v1", orderId: id }), "compensated");
  assert.equal(
    await applyReply(fx.db, "late-2", { type: "payments.succeeded.v1", orderId: id, providerRef: "ch_9" }),
    "compensated",
  );
  assert.equal(
    await applyReply(fx.db, "late-1", { type: "inventory.reserved.v1", orderId: id }),
    "duplicate",
    "a redelivered late reply is not compensated twice",
  );
  assert.equal(await applyReply(fx.db, "late-3", { type: "inventory.released.v1", orderId: id }), "ignored");
  assert.equal(await applyReply(fx.db, "late-4", { type: "payments.voided.v1", orderId: id }), "ignored");

  assert.deepEqual((await sent(fx.db, id)).slice(before.length), [
    "inventory.commands inventory.release.v1",
    "payments.commands payments.refund.v1",
  ]);
  const order = (await getOrder(fx.db, id))!;
  assert.deepEqual([order.status, order.reason], ["CANCELLED", "deadline exceeded while RESERVING"]);
});

Deno.test("migration 002 gives orders stored before it a deadline a minute ahead instead of expiring them at once", async () => {
  await using fx = await freshDatabase();
  const only001 = await Deno.makeTempDir();
  try {
    await Deno.copyFile(new URL("../../migrations/orders/001_init.sql", import.meta.url), `${only001}/001_init.sql`);
    await migrate(fx.db, only001);
  } finally {
    await Deno.remove(only001, { recursive: true });
  }
  await fx.db.query(
    `insert into orders (id, customer_id, items, total_cents, payment_token, status, step, created_at)
     values ('old', 'alice', '[]', 100, 'tok', 'PENDING', 'RESERVING', now() - interval '1 day')`,
  );
  await migrateService(fx.db, "orders", [OUTBOX_MIGRATIONS]);
  const [row] = await fx.db.query<{ ahead_ms: number }>(
    "select extract(epoch from deadline_at - now()) * 1000 as ahead_ms from orders where id = 'old'",
  );
  assert.ok(Number(row.ahead_ms) > 50_000 && Number(row.ahead_ms) <= 60_000, `deadline ${row.ahead_ms} ms ahead`);
  assert.deepEqual(await expireOverdue(fx.db), []);
});
