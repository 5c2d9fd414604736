/**
 * Saga deadlines end to end: six services in distributed mode on a private Kafka that is killed while two orders are
 * in flight and kept down longer than the orders' deadline. Each order must end CANCELLED with a deadline reason while
 * the broker is still down (the sweep needs only the orders database), and once the broker is back every
 * compensation must land: stock back to its initial value, the charge made during the outage refunded.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { startKafka, waitUntil } from "@trellis/platform/testing";
import { startCluster } from "../support/cluster.ts";
import { ApiClient } from "./scenarios.ts";

const DEADLINE_MS = 5_000;

Deno.test("a broker down for longer than the deadline: orders are CANCELLED with a deadline reason, their stock returned and their charge refunded", async () => {
  await using kafka = await startKafka();
  await using cluster = await startCluster({
    env: {
      KAFKA_BROKERS: kafka.url,
      ORDER_DEADLINE_MS: String(DEADLINE_MS),
      ORDER_SWEEP_MS: "500",
      // Keeps the charge at the provider long enough to kill the broker while the order is CHARGING.
      PAYMENTS_LATENCY_MS: "3000",
    },
  });
  const ordersDb = postgres(cluster.databases.orders, { max: 1, onnotice: () => {} });
  try {
    const alice = await ApiClient.login(cluster.endpoints);
    const before = await alice.stock();
    const step = async (id: string) => (await ordersDb`select step from orders where id = ${id}`)[0]?.step;

    // Order A is CHARGING (stock reserved, the charge at the provider) when the broker dies.
    const charging = await alice.placeOrder([{ sku: "kettle", quantity: 1 }]);
    await waitUntil(async () => (await step(charging.id)) === "CHARGING", 20_000, "order A to reach CHARGING");
    await kafka.kill();
    const killedAt = Date.now();

    // Order B is placed while the broker is down: it is only written to the orders outbox, so it is accepted.
    const reserving = await alice.placeOrder([{ sku: "mug-blue", quantity: 1 }]);
    const placedB = Date.now();

    const a = await alice.settle(charging.id, DEADLINE_MS + 10_000);
    assert.equal(a.status, "CANCELLED", JSON.stringify(a));
    assert.equal(a.reason, "deadline exceeded while CHARGING");
    const b = await alice.settle(reserving.id, DEADLINE_MS + 10_000);
    const cancelledB = Date.now();
    assert.equal(b.status, "CANCELLED", JSON.stringify(b));
    assert.equal(b.reason, "deadline exceeded while RESERVING");
    console.log(`order B: cancelled ${cancelledB - placedB} ms after it was placed (deadline ${DEADLINE_MS} ms)`);

    // Down for longer than the deadline, then back.
    const downFor = DEADLINE_MS + 2_000 - (Date.now() - killedAt);
    if (downFor > 0) await new Promise((r) => setTimeout(r, downFor));
    const restartAt = Date.now();
    await kafka.start();
    console.log(`kafka down ${restartAt - killedAt} ms; back after ${Date.now() - restartAt} ms`);

    let last: { a?: unknown; b?: unknown; stock?: unknown } = {};
    await waitUntil(
      async () => {
        const [a, b, stock] = [
          (await alice.call("GET", `/v1/orders/${charging.id}`)).body,
          (await alice.call("GET", `/v1/orders/${reserving.id}`)).body,
          await alice.stock(),
        ];
        last = { a, b, stock };
        return a.reservation?.status === "RELEASED" && a.payment?.status === "REFUNDED" &&
          b.reservation?.status === "RELEASED" && stock.kettle === before.kettle &&
          stock["mug-blue"] === before["mug-blue"];
      },
      90_000,
      "both reservations RELEASED, A's charge REFUNDED and the stock back to its initial value",
    ).catch((err) => {
      throw new Error(`${err.message}; last seen: ${JSON.stringify(last)}`);
    });
    console.log(`compensations landed ${Date.now() - restartAt} ms after the restart began`);

    const [finalA, finalB] = [
      (await alice.call("GET", `/v1/orders/${charging.id}`)).body,
      (await alice.call("GET", `/v1/orders/${reserving.id}`)).body,
    ];
    assert.deepEqual([finalA.status, finalA.reason], ["CANCELLED", "deadline exceeded while CHARGING"]);
    assert.deepEqual([finalB.status, finalB.reason], ["CANCELLED", "deadline exceeded while RESERVING"]);
    assert.equal(finalB.payment, null, "order B was never charged");
    assert.deepEqual(await alice.stock(), before);

    // The late replies were compensated, not ignored: B's reservation arrived after B was cancelled, and so did A's
    // charge (or, had it not reached payments before the kill, it was charged and refunded in partition order).
    // Inventory may release B's stock (the deadline's release right behind the reservation in B's partition) before
    // the "reserved" reply has travelled back to orders, so wait for orders to have seen both late replies.
    const ordersLog = cluster.procs.find((p) => p.name === "orders")!.log;
    const compensated = async (type: string, orderId: string) =>
      (await Deno.readTextFile(ordersLog)).split("\n").filter((l) => l.includes('"saga step"')).map((l) =>
        JSON.parse(l)
      ).some((s) => s.type === type && s.orderId === orderId && s.outcome === "compensated");
    await waitUntil(() => compensated("inventory.reserved.v1", reserving.id), 30_000, "B's late reservation released");
    await waitUntil(() => compensated("payments.succeeded.v1", charging.id), 30_000, "A's late charge refunded");

    const metrics = await (await fetch(`${cluster.procs.find((p) => p.name === "orders")!.url}/metrics`)).text();
    for (const step of ["CHARGING", "RESERVING"]) {
      assert.match(metrics, new RegExp(`^orders_deadline_exceeded_total\\{[^}]*step="${step}"[^}]*\\} 1$`, "m"));
    }

    const results = await cluster.stop();
    assert.deepEqual(results.filter((r) => r.code !== 0).map((r) => `${r.name} exited ${r.code}`), []);
  } catch (err) {
    for (const p of cluster.procs) console.error(`--- ${p.name} ---\n${await cluster.tail(p.name)}`);
    throw err;
  } finally {
    await ordersDb.end();
  }
});
