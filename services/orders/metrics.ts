import { Counter, Gauge, Histogram } from "prom-client";
import type { Database } from "@trellis/platform/db";
import type { Service } from "@trellis/platform/service";
import * as queries from "./queries.ts";
import type { Decision, SagaStep } from "./saga.ts";
import type { ExpiredOrder, StoredOrder } from "./store.ts";

/** What the orders service reports about its sagas, on the service's registry. */
export interface SagaMetrics {
  /** A new order's saga started. */
  started(): void;
  /** A reply moved `before` on by `decision` (committed). */
  applied(before: StoredOrder, decision: Decision): void;
  /** The deadline sweep cancelled an order. */
  expired(order: ExpiredOrder): void;
}

/**
 * The saga's metrics: `orders_sagas_started_total`, `orders_sagas_completed_total{outcome}` (confirmed, cancelled),
 * `orders_saga_step_duration_seconds{step}` (time an order spent in a step, observed when it leaves it),
 * `orders_deadline_exceeded_total{step}` and `orders_sagas_past_deadline` (orders still PENDING past their deadline
 * now, counted at each scrape: the sweep should keep it at 0).
 */
export function sagaMetrics(svc: Service, db: () => Database): SagaMetrics {
  const registers = [svc.registry];
  const started = new Counter({
    name: "orders_sagas_started_total",
    help: "Order sagas started (new orders).",
    registers,
  });
  const completed = new Counter({
    name: "orders_sagas_completed_total",
    help: "Order sagas that ended, by outcome (confirmed, cancelled).",
    labelNames: ["outcome"] as const,
    registers,
  });
  const stepSeconds = new Histogram({
    name: "orders_saga_step_duration_seconds",
    help: "Time an order spent in a saga step, observed when it leaves the step, by step.",
    labelNames: ["step"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers,
  });
  const deadlines = new Counter({
    name: "orders_deadline_exceeded_total",
    help: "Orders cancelled because their saga was still PENDING at the deadline, by the step it was stuck in.",
    labelNames: ["step"] as const,
    registers,
  });
  new Gauge({
    name: "orders_sagas_past_deadline",
    help: "Orders still PENDING past their deadline now (NaN while the database does not answer within 1 s).",
    registers,
    async collect() {
      const signal = AbortSignal.timeout(1_000);
      try {
        const row = await queries.countPendingPastDeadline(db(), { signal });
        this.set(Number(row!.n));
      } catch {
        this.set(Number.NaN);
      }
    },
  });
  for (const outcome of ["confirmed", "cancelled"]) completed.labels({ outcome });
  const left = (step: SagaStep, since: string) => {
    if (step !== "DONE") stepSeconds.observe({ step }, Math.max(0, Date.now() - Date.parse(since)) / 1000);
  };
  return {
    started: () => started.inc(),
    applied(before, decision) {
      const after = decision.order;
      if (!after) return;
      if (after.step !== before.step) left(before.step, before.updatedAt);
      if (before.status === "PENDING" && after.status === "CONFIRMED") completed.inc({ outcome: "confirmed" });
      if (before.status === "PENDING" && after.status === "CANCELLED") completed.inc({ outcome: "cancelled" });
    },
    expired(order) {
      deadlines.inc({ step: order.step });
      completed.inc({ outcome: "cancelled" });
    },
  };
}
