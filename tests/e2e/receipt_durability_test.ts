import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { createJetStreamPubSub } from "@trellis/platform/messaging";
import { encodeMessage } from "@trellis/platform/messaging/schema";
import { createLogger } from "@trellis/platform/log";
import { events, Notices } from "../../services/shared/events.ts";
import { startCluster } from "../support/cluster.ts";
import { ApiClient } from "./scenarios.ts";

const natsUrl = Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222";
/** How long after notifications is back every receipt owed meanwhile must exist. */
const CATCH_UP_MS = 30_000;

/** The names of the JetStream streams holding subjects that start with `prefix`. */
async function streamsOf(prefix: string): Promise<string[]> {
  const nc = await connect({ servers: natsUrl });
  try {
    const names: string[] = [];
    for await (const s of (await jetstreamManager(nc)).streams.list()) {
      if (s.config.subjects?.some((subject) => subject.startsWith(prefix))) names.push(s.config.name);
    }
    return names;
  } finally {
    await nc.close();
  }
}

/** The JSON log lines of one service that carry `msg`. */
async function logLines(log: string, msg: string): Promise<Record<string, unknown>[]> {
  return (await Deno.readTextFile(log)).split("\n").flatMap((line) => {
    try {
      const parsed = JSON.parse(line);
      return parsed?.msg === msg ? [parsed] : [];
    } catch {
      return [];
    }
  });
}

Deno.test("receipts survive the notifications service being down: SIGKILLed, orders confirmed meanwhile get their receipts once it is back, and a duplicate notice leaves a receipt as it was", async (t) => {
  await using cluster = await startCluster();
  const prefix = cluster.topicPrefix;
  try {
    const alice = await ApiClient.login(cluster.endpoints);
    // The restarted process appends to the same log file.
    const log = cluster.procs.find((p) => p.name === "notifications")!.log;

    let first: { id: string; issuedAt: string; body: Record<string, unknown> };
    await t.step("with notifications up, a confirmed order gets its receipt", async () => {
      const placed = await alice.placeOrder([{ sku: "mug-blue", quantity: 1 }]);
      assert.equal((await alice.settle(placed.id)).status, "CONFIRMED");
      const receipt = await alice.receipt(placed.id, CATCH_UP_MS);
      assert.equal(receipt.status, 200, JSON.stringify(receipt.body));
      first = { id: placed.id, issuedAt: receipt.body.issuedAt, body: receipt.body };
    });

    const owed: { id: string; totalCents: number }[] = [];
    await t.step(
      "with notifications SIGKILLed, orders still confirm and their receipts are not there yet",
      async () => {
        await cluster.kill("notifications");
        for (let i = 0; i < 5; i++) {
          const placed = await alice.placeOrder([{ sku: "tea-sencha", quantity: 1 }, { sku: "mug-blue", quantity: 1 }]);
          const order = await alice.settle(placed.id);
          assert.equal(order.status, "CONFIRMED", JSON.stringify(order));
          owed.push({ id: placed.id, totalCents: placed.totalCents });
        }
        const meanwhile = await alice.call("GET", `/v1/orders/${owed[0].id}/receipt`);
        assert.notEqual(meanwhile.status, 200, "a receipt exists although notifications is down");
      },
    );

    await t.step("restarted, notifications writes every receipt owed meanwhile, each once", async () => {
      const restarting = performance.now();
      await cluster.restart("notifications");
      const ready = performance.now();
      const deadline = ready + CATCH_UP_MS;
      for (const o of owed) {
        const receipt = await alice.receipt(o.id, Math.max(0, deadline - performance.now()));
        assert.equal(receipt.status, 200, `no receipt for ${o.id} ${CATCH_UP_MS} ms after the restart`);
        assert.equal(receipt.body.orderId, o.id);
        assert.equal(receipt.body.totalCents, o.totalCents);
      }
      const caughtUp = performance.now();
      const written = (await logLines(log, "receipt written")).map((l) => l.orderId);
      for (const o of owed) assert.equal(written.filter((id) => id === o.id).length, 1, `receipts written for ${o.id}`);
      console.log(
        `restart to ready ${(ready - restarting).toFixed(0)} ms; ready to all ${owed.length} receipts ` +
          `${(caughtUp - ready).toFixed(0)} ms`,
      );
    });

    await t.step(
      "a second order.confirmed for an order with a receipt is skipped and logged, issuedAt unchanged",
      async () => {
        // What a redelivery, or the relay publishing the notice again after the duplicate window, looks like.
        const bus = await createJetStreamPubSub({
          servers: natsUrl,
          logger: createLogger("test", { write: () => {} }),
        });
        try {
          const { orderId, customerId, items, totalCents, confirmedAt } = first.body as {
            orderId: string;
            customerId: string;
            items: { sku: string; quantity: number }[];
            totalCents: number;
            confirmedAt: string;
          };
          await bus.publish(
            prefix + Notices.orderConfirmed,
            encodeMessage(events, { type: "order.confirmed.v1", orderId, customerId, items, totalCents, confirmedAt }),
          );
        } finally {
          await bus.close();
        }
        const deadline = Date.now() + CATCH_UP_MS;
        while (
          !(await logLines(log, "receipt already written; duplicate notice skipped")).some((l) =>
            l.orderId === first.id
          )
        ) {
          assert.ok(Date.now() < deadline, `no duplicate skipped for ${first.id} within ${CATCH_UP_MS} ms`);
          await new Promise((r) => setTimeout(r, 100));
        }
        const receipt = await alice.receipt(first.id);
        assert.equal(receipt.status, 200);
        assert.equal(receipt.body.issuedAt, first.issuedAt);
      },
    );

    await t.step("orders' /readyz lists its database, both buses and JWKS as ok", async () => {
      const orders = cluster.procs.find((p) => p.name === "orders")!;
      const res = await fetch(`${orders.url}/readyz`);
      const body = await res.json();
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.deepEqual(Object.keys(body.checks).sort(), ["database", "events", "jobs", "jwks"]);
      for (const [name, c] of Object.entries(body.checks as Record<string, { ok: boolean }>)) assert.ok(c.ok, name);
    });

    await t.step("every service exits 0 on SIGTERM, and the run's streams are deleted", async () => {
      const results = await cluster.stop();
      assert.deepEqual(results.filter((r) => r.code !== 0).map((r) => `${r.name} exited ${r.code}`), []);
      assert.deepEqual(await streamsOf(prefix), []);
    });
  } catch (err) {
    for (const p of cluster.procs) console.error(`--- ${p.name} ---\n${await cluster.tail(p.name)}`);
    throw err;
  }
});
