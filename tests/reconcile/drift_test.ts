/**
 * Every drift the system's reconciliation checks look for, injected with SQL into the services' real Postgres
 * databases while the six services run (embedded mode on real Postgres: one database per service), then: a dry run
 * through `POST /admin/reconcile` finds it and changes nothing, a repair run fixes it through the owning service's
 * normal path, and a second run is clean. One system start serves every drift.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import type { ReconcileReport } from "@trellis/platform/reconcile";
import { waitUntil } from "@trellis/platform/testing";
import { connectServiceDatabase, type Infra, migrateService } from "../../services/shared/infra.ts";
import type { Database } from "@trellis/platform/db";
import { embeddedSystem } from "../support/system.ts";
import { ApiClient } from "../e2e/scenarios.ts";
import { inventoryChecks } from "../../services/inventory/reconcile.ts";
import { ordersChecks } from "../../services/orders/reconcile.ts";

const DATABASE_URL = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";
const SERVICES = ["auth", "orders", "inventory", "payments"] as const;
const OLD = "now() - interval '1 hour'";

/** The embedded infrastructure with each service's database on the real Postgres server, under `prefix`. */
function onPostgres(infra: Infra, prefix: string): Infra {
  const dbs: Database[] = [];
  return {
    ...infra,
    async database(service, wanted) {
      const db = await connectServiceDatabase(DATABASE_URL, prefix, service);
      dbs.push(db);
      await migrateService(db, service, wanted?.with);
      return db;
    },
    async close() {
      await infra.close();
      for (const db of dbs) await db.close();
    },
  };
}

/** A second connection to one service's database, for calling its checks directly. */
async function databaseOf(prefix: string, service: string): Promise<Database & AsyncDisposable> {
  const db = await connectServiceDatabase(DATABASE_URL, prefix, service);
  return Object.assign(db, { [Symbol.asyncDispose]: () => db.close() });
}

type Owner = "orders" | "inventory" | "payments";

Deno.test("each drift injected with SQL is found by a dry run, fixed by a repair run, and gone on the next run", async (t) => {
  const prefix = `trellis_rec_${crypto.randomUUID().slice(0, 8)}`;
  const sqlOf = (s: string) =>
    postgres(`${DATABASE_URL.replace(/\/[^/]*$/, "")}/${prefix}_${s}`, { max: 1, onnotice: () => {} });
  const admin = postgres(DATABASE_URL, { max: SERVICES.length, onnotice: () => {} });
  try {
    await using env = await embeddedSystem({
      // No sweep or scheduled run during the test: only the runs it asks for change anything.
      env: { ORDER_SWEEP_MS: "3600000", RECONCILE_INTERVAL_S: "0", LOG_LEVEL: "error" },
      wrap: (infra) => onPostgres(infra, prefix),
    });
    const db = { orders: sqlOf("orders"), inventory: sqlOf("inventory"), payments: sqlOf("payments") };
    try {
      const { services } = env.system;
      const token = async (audience: string, scope = "ops:reconcile") => {
        const res = await fetch(`${env.endpoints.auth}/oauth/token`, {
          method: "POST",
          body: new URLSearchParams({
            grant_type: "client_credentials",
            client_id: "ops",
            client_secret: env.config.clientSecrets.ops,
            audience,
            scope,
          }),
        });
        assert.equal(res.status, 200, await res.clone().text());
        return (await res.json()).access_token as string;
      };
      const tokens = {
        orders: await token("orders"),
        inventory: await token("inventory"),
        payments: await token("payments"),
      };
      const reconcile = async (owner: Owner, repair: boolean): Promise<ReconcileReport> => {
        const res = await fetch(`${services[owner].url}/admin/reconcile`, {
          method: "POST",
          headers: { authorization: `Bearer ${tokens[owner]}`, "content-type": "application/json" },
          body: JSON.stringify({ repair }),
        });
        assert.equal(res.status, 200, await res.clone().text());
        return await res.json();
      };
      const driftsOf = (report: ReconcileReport, check: string) => {
        const part = report.checks.find((c) => c.name === check);
        assert.ok(part, `${check} in ${JSON.stringify(report.checks.map((c) => c.name))}`);
        assert.equal(part.error, undefined, `${check} failed: ${part.error}`);
        return part.drifts;
      };
      /** Dry run finds exactly `subject` under `check`; repair reports it repaired; `fixed` lands; then all clean. */
      const cycle = async (
        owner: Owner,
        check: string,
        subject: string,
        unchanged: () => Promise<void>,
        fixed: () => Promise<boolean>,
      ) => {
        const dry = await reconcile(owner, false);
        assert.equal(dry.mode, "dry-run");
        assert.deepEqual(
          driftsOf(dry, check).map((d) => [d.subject, d.outcome]),
          [[subject, "found"]],
          JSON.stringify(dry),
        );
        assert.equal(dry.totals.found, 1, JSON.stringify(dry));
        await unchanged();
        const repaired = await reconcile(owner, true);
        assert.equal(repaired.mode, "repair");
        assert.deepEqual(driftsOf(repaired, check).map((d) => [d.subject, d.outcome]), [[subject, "repaired"]]);
        await waitUntil(fixed, 15_000, `${check}: the repair of ${subject} to land`);
        const again = await reconcile(owner, false);
        assert.ok(again.clean, JSON.stringify(again));
        console.log(`${check}: found ${dry.totals.found}, repaired ${repaired.totals.repaired}, then clean`);
      };

      const alice = await ApiClient.login(env.endpoints);
      const placed = await Promise.all(
        ["tea-sencha", "mug-blue", "kettle", "tea-sencha", "mug-blue", "kettle"].map((sku) =>
          alice.placeOrder([{ sku, quantity: 2 }])
        ),
      );
      await Promise.all(placed.map(async (o) => {
        assert.equal((await alice.settle(o.id)).status, "CONFIRMED");
        assert.equal((await alice.receipt(o.id)).status, 200);
      }));
      const [late, cancelled, unknown, unreserved, uncharged, unreceipted] = placed.map((o) => o.id);
      const reservation = async (id: string) =>
        (await db.inventory`select status from reservations where order_id = ${id}`)[0]?.status;
      const payment = async (id: string) =>
        (await db.payments`select status from payments where order_id = ${id}`)[0]?.status;
      const orderStatus = async (id: string) =>
        (await db.orders`select status from orders where id = ${id}`)[0]?.status;
      const stock = async (sku: string) => (await db.inventory`select stock from products where sku = ${sku}`)[0].stock;

      await t.step("before any drift, every service's reconciliation is clean", async () => {
        for (const owner of ["orders", "inventory", "payments"] as const) {
          const report = await reconcile(owner, false);
          assert.ok(report.clean, JSON.stringify(report));
        }
      });

      await t.step("an order PENDING past its deadline is cancelled and compensated (orders)", async () => {
        await db.orders.unsafe(
          `update orders set status = 'PENDING', step = 'CHARGING', deadline_at = ${OLD}, updated_at = ${OLD} where id = $1`,
          [late],
        );
        await cycle(
          "orders",
          "pending-past-deadline",
          late,
          async () => assert.equal(await orderStatus(late), "PENDING"),
          async () =>
            await orderStatus(late) === "CANCELLED" && await reservation(late) === "RELEASED" &&
            await payment(late) === "REFUNDED",
        );
        const [o] = await db.orders`select reason from orders where id = ${late}`;
        assert.equal(o.reason, "deadline exceeded while CHARGING");
      });

      await t.step("stock still reserved for a CANCELLED order is released (inventory)", async () => {
        await db.orders.unsafe(
          `update orders set status = 'CANCELLED', step = 'DONE', reason = 'cancelled by hand', updated_at = ${OLD}
           where id = $1`,
          [cancelled],
        );
        await db.inventory.unsafe(`update reservations set updated_at = ${OLD} where order_id = $1`, [cancelled]);
        await db.payments.unsafe(`update payments set updated_at = ${OLD} where order_id = $1`, [cancelled]);
        const before = await stock("mug-blue");
        await cycle(
          "inventory",
          "reserved-for-ended-order",
          cancelled,
          async () => {
            assert.equal(await reservation(cancelled), "RESERVED");
            assert.equal(await stock("mug-blue"), before);
          },
          async () => await reservation(cancelled) === "RELEASED" && await stock("mug-blue") === before + 2,
        );
      });

      await t.step("a successful charge for a CANCELLED order is refunded (payments)", async () => {
        await cycle(
          "payments",
          "charge-for-ended-order",
          cancelled,
          async () => assert.equal(await payment(cancelled), "SUCCEEDED"),
          async () => await payment(cancelled) === "REFUNDED",
        );
      });

      await t.step("stock reserved for an order the orders service does not know is released (inventory)", async () => {
        await db.orders`delete from orders where id = ${unknown}`;
        await db.inventory.unsafe(`update reservations set updated_at = ${OLD} where order_id = $1`, [unknown]);
        await db.payments.unsafe(`update payments set updated_at = ${OLD} where order_id = $1`, [unknown]);
        const before = await stock("kettle");
        await cycle(
          "inventory",
          "reserved-for-ended-order",
          unknown,
          async () => assert.equal(await reservation(unknown), "RESERVED"),
          async () => await reservation(unknown) === "RELEASED" && await stock("kettle") === before + 2,
        );
      });

      await t.step(
        "a successful charge for an order the orders service does not know is refunded (payments)",
        async () => {
          await cycle(
            "payments",
            "charge-for-ended-order",
            unknown,
            async () => assert.equal(await payment(unknown), "SUCCEEDED"),
            async () => await payment(unknown) === "REFUNDED",
          );
        },
      );

      await t.step(
        "a CONFIRMED order whose reservation is missing gets its stock reserved again (orders)",
        async () => {
          await db.orders.unsafe(`update orders set updated_at = ${OLD} where id = $1`, [unreserved]);
          await db.inventory.begin(async (sql) => {
            await sql`delete from reservations where order_id = ${unreserved}`;
            await sql`update products set stock = stock + 2 where sku = 'tea-sencha'`;
          });
          const before = await stock("tea-sencha");
          await cycle(
            "orders",
            "confirmed-without-reservation",
            unreserved,
            async () => assert.equal(await reservation(unreserved), undefined),
            async () => await reservation(unreserved) === "RESERVED" && await stock("tea-sencha") === before - 2,
          );
        },
      );

      await t.step(
        "a CONFIRMED order whose charge is missing is charged again under its idempotency key (orders)",
        async () => {
          await db.orders.unsafe(`update orders set updated_at = ${OLD} where id = $1`, [uncharged]);
          await db.payments`delete from payments where order_id = ${uncharged}`;
          await cycle(
            "orders",
            "confirmed-without-charge",
            uncharged,
            async () => assert.equal(await payment(uncharged), undefined),
            async () => await payment(uncharged) === "SUCCEEDED",
          );
        },
      );

      await t.step("a CONFIRMED order without a receipt has order.confirmed published again (orders)", async () => {
        await db.orders.unsafe(`update orders set updated_at = ${OLD} where id = $1`, [unreceipted]);
        for (const f of [`${unreceipted}.json`, `${unreceipted}.json.meta`]) {
          await Deno.remove(`${env.config.storageDir}/receipts/${f}`).catch(() => {});
        }
        await cycle(
          "orders",
          "confirmed-without-receipt",
          unreceipted,
          async () => assert.equal((await alice.call("GET", `/v1/orders/${unreceipted}/receipt`)).status, 404),
          async () => (await alice.call("GET", `/v1/orders/${unreceipted}/receipt`)).status === 200,
        );
      });

      await t.step(
        "a product whose stock disagrees with its reservations gets its stock recomputed (inventory)",
        async () => {
          const before = await stock("kettle");
          await db.inventory`update products set stock = stock + 5 where sku = 'kettle'`;
          await cycle(
            "inventory",
            "stock-disagrees-with-reservations",
            "kettle",
            async () => assert.equal(await stock("kettle"), before + 5),
            async () => await stock("kettle") === before,
          );
        },
      );

      await t.step(
        "a check with a small limit pages through every row of its window over runs, then starts over",
        async () => {
          await using inventoryDb = await databaseOf(prefix, "inventory");
          const everyOrderUnknown = () => Promise.resolve(undefined);
          const paged = inventoryChecks(() => inventoryDb, everyOrderUnknown, { graceMs: 0, limit: 2 })
            .find((c) => c.name === "reserved-for-ended-order")!;
          const reserved = (await db.inventory`select order_id from reservations where status = 'RESERVED'`)
            .map((r) => r.order_id as string).sort();
          assert.ok(reserved.length >= 3, `${reserved.length} reservations`);
          const seen: string[] = [];
          for (let run = 0; run < Math.ceil((reserved.length + 1) / 2); run++) {
            const found = await paged.find(AbortSignal.timeout(5_000));
            assert.ok(found.length <= 2);
            seen.push(...found.map((d) => d.subject));
          }
          assert.deepEqual([...new Set(seen)].sort(), reserved, "every RESERVED row was looked at once");
          assert.equal(seen.length, reserved.length, JSON.stringify({ seen, reserved }));
          const again = await paged.find(AbortSignal.timeout(5_000));
          assert.ok(reserved.includes(again[0]?.subject), "after the last page the next run starts over");
        },
      );

      await t.step(
        "two repairs of one drift at once: one repairs, the other is skipped and changes nothing",
        async () => {
          await using inventoryDb = await databaseOf(prefix, "inventory");
          await using ordersDb = await databaseOf(prefix, "orders");
          const noPeers = () => Promise.reject(new Error("not asked"));
          const stockCheck = inventoryChecks(() => inventoryDb, noPeers)
            .find((c) => c.name === "stock-disagrees-with-reservations")!;
          const mugs = await stock("mug-blue");
          await db.inventory`update products set stock = stock - 3 where sku = 'mug-blue'`;
          const [drift] = await stockCheck.find(AbortSignal.timeout(5_000));
          assert.equal(drift.subject, "mug-blue");
          const outcomes = await Promise.all([1, 2].map(() => stockCheck.repair(drift, AbortSignal.timeout(5_000))));
          assert.deepEqual(outcomes.sort(), ["repaired", "skipped"]);
          assert.equal(await stock("mug-blue"), mugs);

          const pending = ordersChecks(() => ordersDb, { reservation: noPeers, payment: noPeers, hasReceipt: noPeers })
            .find((c) => c.name === "pending-past-deadline")!;
          const [o] = await db.orders`select id from orders where status = 'CONFIRMED' order by created_at limit 1`;
          await db.orders.unsafe(
            `update orders set status = 'PENDING', step = 'CHARGING', deadline_at = ${OLD} where id = $1`,
            [o.id],
          );
          const outboxBefore = (await db.orders`select count(*)::int as n from outbox where key = ${o.id}`)[0].n;
          const [late] = await pending.find(AbortSignal.timeout(5_000));
          assert.equal(late.subject, o.id);
          const twice = await Promise.all([1, 2].map(() => pending.repair(late, AbortSignal.timeout(5_000))));
          assert.deepEqual(twice.sort(), ["repaired", "skipped"]);
          const written = (await db.orders`select count(*)::int as n from outbox where key = ${o.id}`)[0].n -
            outboxBefore;
          assert.equal(written, 3, "one refund, one release, one orders.cancelled: compensated once");
          await waitUntil(
            async () => await reservation(o.id) === "RELEASED" && await payment(o.id) === "REFUNDED",
            15_000,
            "the single compensation to land",
          );
          for (const owner of ["orders", "inventory", "payments"] as const) {
            const report = await reconcile(owner, false);
            assert.ok(report.clean, JSON.stringify(report));
          }
        },
      );

      await t.step(
        "GET /admin/reconcile/last answers the last report; no token, a token without the scope, or a bad body is refused",
        async () => {
          const last = await fetch(`${services.orders.url}/admin/reconcile/last`, {
            headers: { authorization: `Bearer ${tokens.orders}` },
          });
          assert.equal(last.status, 200);
          const report: ReconcileReport = await last.json();
          assert.equal(report.service, "orders");
          assert.ok(report.clean);
          const anonymous = await fetch(`${services.orders.url}/admin/reconcile`, { method: "POST" });
          assert.equal(anonymous.status, 401);
          await anonymous.body?.cancel();
          const keysOnly = await token("orders", "keys:read");
          const unscoped = await fetch(`${services.orders.url}/admin/reconcile`, {
            method: "POST",
            headers: { authorization: `Bearer ${keysOnly}` },
          });
          assert.equal(unscoped.status, 403);
          assert.match((await unscoped.json()).detail, /ops:reconcile/);
          const bad = await fetch(`${services.inventory.url}/admin/reconcile`, {
            method: "POST",
            headers: { authorization: `Bearer ${tokens.inventory}`, "content-type": "application/json" },
            body: '{"repair":"yes"}',
          });
          assert.equal(bad.status, 400);
          assert.equal(bad.headers.get("content-type"), "application/problem+json");
          await bad.body?.cancel();
        },
      );
    } finally {
      await Promise.all(Object.values(db).map((s) => s.end()));
    }
  } finally {
    await Promise.all(SERVICES.map((s) => admin.unsafe(`drop database if exists "${prefix}_${s}" with (force)`)));
    await admin.end();
  }
});
