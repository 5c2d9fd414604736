import assert from "node:assert/strict";
import { freshDatabase } from "@trellis/platform/db/testing";
import { createLogger } from "@trellis/platform/log";
import { OUTBOX_MIGRATIONS } from "@trellis/platform/outbox";
import { waitUntil } from "@trellis/platform/testing";
import { migrateService } from "../shared/infra.ts";
import { createOrder, getOrder } from "./store.ts";
import { startDeadlineSweeper } from "./sweeper.ts";

const tea = { customerId: "alice", items: [{ sku: "tea", quantity: 1 }], totalCents: 450, paymentToken: "tok_visa" };

Deno.test("startDeadlineSweeper() cancels an order once its deadline passes, logging it, and stops cleanly", async () => {
  await using fx = await freshDatabase();
  await migrateService(fx.db, "orders", [OUTBOX_MIGRATIONS]);
  const lines: string[] = [];
  const log = createLogger("orders", { level: "info", write: (line) => lines.push(line) });
  const expired: string[] = [];
  const sweeper = startDeadlineSweeper(fx.db, {
    intervalMs: 50,
    logger: log,
    onExpired: (e) => expired.push(e.orderId),
  });
  try {
    const { order } = await createOrder(fx.db, { ...tea, deadlineMs: 1_000 });
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await getOrder(fx.db, order.id))!.status, "PENDING", "not cancelled before its deadline");
    await waitUntil(
      async () => (await getOrder(fx.db, order.id))!.status === "CANCELLED",
      5_000,
      "the sweeper to cancel the overdue order",
    );
    assert.equal((await getOrder(fx.db, order.id))!.reason, "deadline exceeded while RESERVING");
    const logged = lines.map((l) => JSON.parse(l)).find((l) => l.orderId === order.id);
    assert.equal(logged?.msg, "order deadline exceeded: cancelled");
    assert.equal(logged?.level, "warn");
    assert.deepEqual(expired, [order.id]);
  } finally {
    await sweeper.stop();
  }
});

Deno.test("startDeadlineSweeper() refuses an interval that is not a positive number", () => {
  const log = createLogger("orders", { write: () => {} });
  for (const bad of [0, -1, Number.NaN]) {
    assert.throws(
      // The database is never touched: the options are checked first.
      () => startDeadlineSweeper(undefined as never, { intervalMs: bad, logger: log }),
      (err) => err instanceof RangeError && err.message.includes(`current value is ${bad}`),
    );
  }
});
