/**
 * The chaos suite's auditor: after a fault, reads the services' own databases and the receipts on disk and checks
 * the invariants a customer and an accountant care about.
 */
import postgres from "postgres";
import { readLedger } from "../../services/payments/provider.ts";
import type { LoadResult } from "./load.ts";

/** Where a cluster keeps its state. */
export interface ClusterState {
  /** Database URL per service (orders, inventory, payments). */
  databases: Record<"orders" | "inventory" | "payments", string>;
  /** Where notifications writes `receipts/<order>.json`. */
  storageDir: string;
}

/** One case's figures. */
export interface Report {
  accepted: number;
  /** Clients that never got a 2xx (gave up retrying). */
  unanswered: number;
  /** Answered 2xx but absent from the orders database. */
  lost: number;
  /** Answered 2xx and still PENDING when the audit gave up waiting. */
  stuck: number;
  /** Terminal, but more than `waitMs` after the later of the recovery and the order's own 2xx. */
  late: number;
  /** Orders the payment provider's ledger shows charged more than once. */
  doubleCharged: number;
  /** CANCELLED orders charged and not refunded (by the provider's ledger, or by the payments database). */
  chargedButCancelled: number;
  /** CONFIRMED orders without a charge at the provider or a SUCCEEDED payment. */
  confirmedUnpaid: number;
  /** Idempotency keys answered with more than one order id, or stored more than once. */
  duplicateKeys: number;
  /** SKUs whose stock differs from initial − confirmed. */
  stockDrift: Record<string, { expected: number; actual: number }>;
  /** CONFIRMED orders without a receipt. */
  missingReceipts: number;
  confirmed: number;
  cancelled: number;
  /** Seconds from `recoveredAt` until every accepted order was terminal (undefined: never within the wait). */
  secondsToTerminal?: number;
}

/** The stock of every product now. */
export async function readStock(state: ClusterState): Promise<Record<string, number>> {
  const sql = postgres(state.databases.inventory, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql.unsafe<{ sku: string; stock: number }[]>("select sku, stock from products");
    return Object.fromEntries(rows.map((r) => [r.sku, Number(r.stock)]));
  } finally {
    await sql.end({ timeout: 1 });
  }
}

/**
 * Waits (up to `waitMs` after `recoveredAt`, or after the last order accepted if that came later) until every
 * accepted order is terminal, its stock settled and its receipt written, then reports what is still wrong.
 */
export async function audit(
  state: ClusterState,
  load: LoadResult,
  initialStock: Record<string, number>,
  recoveredAt: number,
  waitMs = 30_000,
): Promise<Report> {
  const orders = postgres(state.databases.orders, { max: 1, onnotice: () => {} });
  const inventory = postgres(state.databases.inventory, { max: 1, onnotice: () => {} });
  const payments = postgres(state.databases.payments, { max: 1, onnotice: () => {} });
  try {
    const accepted = load.placed.filter((p) => p.id !== undefined);
    const ids = accepted.map((p) => p.id!);
    // An order accepted after the recovery cannot be held to a clock that started before it existed.
    const lastAccepted = Math.max(...accepted.map((p) => p.acceptedAt ?? 0));
    const deadline = Math.max(recoveredAt, lastAccepted) + waitMs;
    type OrderRow = {
      id: string;
      status: string;
      items: { sku: string; quantity: number }[];
      key: string | null;
      done_ms: number;
    };
    let rows: OrderRow[] = [];
    let secondsToTerminal: number | undefined;
    while (true) {
      rows = [
        ...await orders.unsafe<OrderRow[]>(
          `select id, status, items, idempotency_key as key, extract(epoch from updated_at) * 1000 as done_ms
           from orders where id = any($1::text[])`,
          [ids],
        ),
      ];
      const pending = rows.filter((r) => r.status === "PENDING").length;
      if (rows.length === ids.length && pending === 0) {
        secondsToTerminal = Math.max(0, (Date.now() - recoveredAt) / 1000);
        break;
      }
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const byId = new Map(rows.map((r) => [r.id, r]));
    // The database runs on this machine, so its clock is this clock.
    const acceptedAt = new Map(accepted.map((p) => [p.id!, p.acceptedAt!]));
    const late = rows.filter((r) =>
      r.status !== "PENDING" && Number(r.done_ms) > Math.max(recoveredAt, acceptedAt.get(r.id)!) + waitMs
    ).length;
    const confirmed = rows.filter((r) =>
      r.status === "CONFIRMED"
    );
    const cancelled = rows.filter((r) => r.status === "CANCELLED");

    const expectedStock = (): Record<string, number> => {
      const out = { ...initialStock };
      for (const o of confirmed) {
        const items = typeof o.items === "string" ? JSON.parse(o.items) : o.items;
        for (const it of items) out[it.sku] -= it.quantity;
      }
      return out;
    };
    const receiptExists = async (id: string) => {
      try {
        await Deno.stat(`${state.storageDir}/receipts/${id}.json`);
        return true;
      } catch {
        return false;
      }
    };
    // Stock releases and receipts may trail the order's terminal state by a hop; give them the same bounded wait.
    let stockDrift: Report["stockDrift"] = {};
    let missingReceipts = 0;
    let chargedButCancelled = 0;
    let confirmedUnpaid = 0;
    let doubleCharged = 0;
    const settleBy = Math.max(deadline, Date.now() + 5_000);
    while (true) {
      const actual = Object.fromEntries(
        (await inventory.unsafe<{ sku: string; stock: number }[]>("select sku, stock from products")).map((
          r,
        ) => [r.sku, Number(r.stock)]),
      );
      const expected = expectedStock();
      stockDrift = {};
      for (const sku of Object.keys(expected)) {
        if (expected[sku] !== actual[sku]) stockDrift[sku] = { expected: expected[sku], actual: actual[sku] };
      }
      missingReceipts = 0;
      for (const o of confirmed) if (!(await receiptExists(o.id))) missingReceipts++;
      const pay = new Map(
        (await payments.unsafe<{ order_id: string; status: string }[]>(
          "select order_id, status from payments where order_id = any($1::text[])",
          [ids],
        )).map((r) => [r.order_id, r.status]),
      );
      // The provider's own statement (services/payments/provider.ts): what the customer's bank would show.
      const charges = new Map<string, number>();
      const refunded = new Set<string>();
      for (const e of readLedger(`${state.storageDir}/payment-provider-ledger.jsonl`)) {
        if (e.op === "charge") charges.set(e.key, (charges.get(e.key) ?? 0) + 1);
        if (e.op === "refund") refunded.add(e.key);
      }
      doubleCharged = ids.filter((id) => (charges.get(id) ?? 0) > 1).length;
      chargedButCancelled = cancelled.filter((o) =>
        pay.get(o.id) === "SUCCEEDED" || (charges.has(o.id) && !refunded.has(o.id))
      ).length;
      confirmedUnpaid = confirmed.filter((o) => pay.get(o.id) !== "SUCCEEDED" || !charges.has(o.id)).length;
      const clean = Object.keys(stockDrift).length === 0 && missingReceipts === 0 && chargedButCancelled === 0 &&
        confirmedUnpaid === 0;
      if (clean || Date.now() > settleBy) break;
      await new Promise((r) => setTimeout(r, 250));
    }

    const storedPerKey = await orders.unsafe<{ n: number }[]>(
      "select count(*)::int as n from orders where idempotency_key = any($1::text[]) group by idempotency_key having count(*) > 1",
      [accepted.map((p) => p.key)],
    );
    return {
      accepted: accepted.length,
      unanswered: load.placed.length - accepted.length - load.refused.length,
      lost: ids.filter((id) => !byId.has(id)).length,
      stuck: rows.filter((r) => r.status === "PENDING").length,
      late,
      doubleCharged,
      chargedButCancelled,
      confirmedUnpaid,
      duplicateKeys: accepted.filter((p) => p.ids.size > 1).length + storedPerKey.length,
      stockDrift,
      missingReceipts,
      confirmed: confirmed.length,
      cancelled: cancelled.length,
      secondsToTerminal,
    };
  } finally {
    await Promise.all([orders.end({ timeout: 1 }), inventory.end({ timeout: 1 }), payments.end({ timeout: 1 })]);
  }
}

/** The problems in `report`, one line each; empty when the case passed. */
export function problems(report: Report, load: LoadResult): string[] {
  const out: string[] = [];
  if (load.refused.length > 0) {
    out.push(`${load.refused.length} valid orders refused: ${JSON.stringify(load.refused[0])}`);
  }
  if (report.unanswered > 0) {
    const sample = load.placed.find((p) => p.id === undefined);
    out.push(`${report.unanswered} clients never got a 2xx (last error: ${sample?.lastError})`);
  }
  if (report.lost > 0) out.push(`${report.lost} accepted orders lost`);
  if (report.stuck > 0) out.push(`${report.stuck} accepted orders still PENDING`);
  if (report.late > 0) out.push(`${report.late} orders terminal more than 30 s after recovery (or their 2xx)`);
  if (report.doubleCharged > 0) out.push(`${report.doubleCharged} orders charged more than once`);
  if (report.chargedButCancelled > 0) out.push(`${report.chargedButCancelled} orders charged but CANCELLED`);
  if (report.confirmedUnpaid > 0) out.push(`${report.confirmedUnpaid} orders CONFIRMED without a payment`);
  if (report.duplicateKeys > 0) out.push(`${report.duplicateKeys} idempotency keys with more than one order`);
  if (Object.keys(report.stockDrift).length > 0) out.push(`stock drift: ${JSON.stringify(report.stockDrift)}`);
  if (report.missingReceipts > 0) out.push(`${report.missingReceipts} confirmed orders without a receipt`);
  return out;
}
