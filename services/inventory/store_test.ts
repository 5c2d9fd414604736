import assert from "node:assert/strict";
import { type Database, VersionConflictError } from "@trellis/platform/db";
import { freshDatabase } from "@trellis/platform/db/testing";
import { OUTBOX_MIGRATIONS } from "@trellis/platform/outbox";
import { within } from "@trellis/platform/testing";
import type { Item } from "../shared/events.ts";
import { migrateService } from "../shared/infra.ts";
import { release, reserve } from "./store.ts";

/** A fresh Postgres database with the outbox's and the inventory service's migrations and two test products. */
async function inventoryDatabase(stock: Record<string, number>) {
  const fixture = await freshDatabase();
  await migrateService(fixture.db, "inventory", [OUTBOX_MIGRATIONS]);
  for (const [sku, units] of Object.entries(stock)) {
    await fixture.db.query("insert into products (sku, name, price_cents, stock) values ($1, $1, 100, $2)", [
      sku,
      units,
    ]);
  }
  return fixture;
}

async function stockOf(db: Database, sku: string): Promise<number> {
  const [row] = await db.query<{ stock: number }>("select stock from products where sku = $1", [sku]);
  return row.stock;
}

/** The events published for an order, as `type reason`. */
async function replies(db: Database, orderId: string): Promise<string[]> {
  const rows = await db.query<{ payload: string }>("select payload from outbox where key = $1 order by seq", [orderId]);
  return rows.map((r) => JSON.parse(r.payload)).map((e) => e.reason ? `${e.type} ${e.reason}` : e.type);
}

/** Runs every reservation at once, spread over `pools` (as replicas of the service would be). */
function reserveAll(pools: Database[], orders: Item[][], retry?: Parameters<typeof reserve>[4]) {
  return Promise.allSettled(
    orders.map((items, i) => reserve(pools[i % pools.length], `m-${i}`, `o-${i}`, items, retry)),
  );
}

Deno.test("reserve() under 50 concurrent orders for 10 units oversells nothing and answers every order", async () => {
  await using fx = await inventoryDatabase({ widget: 10 });
  const pools = [fx.db, fx.reopen(), fx.reopen()];
  const orders = Array.from({ length: 50 }, () => [{ sku: "widget", quantity: 1 }]);

  const outcomes = await within(reserveAll(pools, orders), 20_000, "50 concurrent reservations");

  const failures = outcomes.filter((o) => o.status === "rejected");
  assert.deepEqual(failures, [], "every reservation settles with an outcome");
  const values = outcomes.map((o) => (o as PromiseFulfilledResult<string>).value);
  assert.equal(values.filter((v) => v === "reserved").length, 10);
  assert.equal(values.filter((v) => v === "rejected").length, 40);
  assert.equal(await stockOf(fx.db, "widget"), 0);
  for (const [i, value] of values.entries()) {
    const expected = value === "reserved" ? "inventory.reserved.v1" : "inventory.rejected.v1 out of stock: widget";
    assert.deepEqual(await replies(fx.db, `o-${i}`), [expected], `order o-${i}`);
  }
});

Deno.test("reserve() under concurrent multi-product orders of mixed sizes keeps every order all-or-nothing", async () => {
  const initial = { cup: 12, lid: 9 };
  await using fx = await inventoryDatabase(initial);
  const pools = [fx.db, fx.reopen(), fx.reopen()];
  const orders: Item[][] = Array.from({ length: 40 }, (_, i) => {
    const items = [{ sku: "cup", quantity: 1 + (i % 3) }];
    if (i % 2 === 0) items.push({ sku: "lid", quantity: 1 + (i % 4) });
    return i % 5 === 0 ? items.reverse() : items;
  });

  const outcomes = await within(reserveAll(pools, orders), 20_000, "40 concurrent reservations");

  assert.deepEqual(outcomes.filter((o) => o.status === "rejected"), [], "every reservation settles with an outcome");
  const taken = { cup: 0, lid: 0 };
  for (const [i, outcome] of outcomes.entries()) {
    const value = (outcome as PromiseFulfilledResult<string>).value;
    const [event] = await replies(fx.db, `o-${i}`);
    if (value === "reserved") {
      assert.equal(event, "inventory.reserved.v1");
      for (const item of orders[i]) taken[item.sku as keyof typeof taken] += item.quantity;
    } else {
      assert.equal(value, "rejected");
      assert.match(event, /^inventory\.rejected\.v1 out of stock: (cup|lid)$/);
    }
  }
  for (const sku of ["cup", "lid"] as const) {
    const left = await stockOf(fx.db, sku);
    assert.ok(left >= 0, `${sku} stock ${left}`);
    assert.equal(initial[sku] - left, taken[sku], `${sku}: units reserved = initial stock - final stock`);
  }
  const [{ reserved }] = await fx.db.query<{ reserved: string }>(
    "select count(*) as reserved from reservations where status = 'RESERVED'",
  );
  assert.equal(
    Number(reserved),
    outcomes.filter((o) => (o as PromiseFulfilledResult<string>).value === "reserved").length,
  );
});

Deno.test("reserve() that loses every race rejects with VersionConflictError, leaves no trace, and succeeds when redelivered", async () => {
  await using fx = await inventoryDatabase({ widget: 30 });
  const pools = [fx.db, fx.reopen(), fx.reopen()];
  const orders = Array.from({ length: 30 }, () => [{ sku: "widget", quantity: 1 }]);

  const outcomes = await within(
    reserveAll(pools, orders, { maxAttempts: 1 }),
    20_000,
    "30 single-attempt reservations",
  );

  const lost = [...outcomes.entries()].filter(([, o]) => o.status === "rejected");
  assert.ok(lost.length > 0, "with one attempt each, some of 30 concurrent reservations conflict");
  for (const [i, outcome] of lost) {
    const error = (outcome as PromiseRejectedResult).reason;
    assert.ok(error instanceof VersionConflictError, String(error));
    assert.equal(error.table, "products");
    assert.deepEqual(error.key, { sku: "widget" });
    assert.deepEqual(await replies(fx.db, `o-${i}`), [], "a conflicted attempt publishes nothing");
  }
  const won = outcomes.length - lost.length;
  assert.equal(await stockOf(fx.db, "widget"), 30 - won);

  for (const [i] of lost) {
    assert.equal(await reserve(fx.db, `m-${i}`, `o-${i}`, orders[i]), "reserved", "the redelivered command");
  }
  assert.equal(await stockOf(fx.db, "widget"), 0);
  assert.equal(await reserve(fx.db, "m-0", "o-0", orders[0]), "duplicate");
});

Deno.test("reserve() and release() keep stock and version consistent for one order", async () => {
  await using fx = await inventoryDatabase({ widget: 3 });
  assert.equal(await reserve(fx.db, "m-1", "o-1", [{ sku: "widget", quantity: 2 }]), "reserved");
  assert.equal(await reserve(fx.db, "m-1", "o-1", [{ sku: "widget", quantity: 2 }]), "duplicate");
  assert.equal(await reserve(fx.db, "m-2", "o-2", [{ sku: "widget", quantity: 2 }]), "rejected");
  assert.equal(await reserve(fx.db, "m-3", "o-3", [{ sku: "gadget", quantity: 1 }]), "rejected");
  assert.deepEqual(await replies(fx.db, "o-3"), ["inventory.rejected.v1 unknown product: gadget"]);
  assert.equal(await release(fx.db, "m-4", "o-1"), "released");
  const [row] = await fx.db.query<{ stock: number; version: number }>(
    "select stock, version from products where sku = 'widget'",
  );
  assert.deepEqual(row, { stock: 3, version: 3 });
});
