import type { OutboxEntry } from "../../services/shared/admin.ts";
import { isOrderId } from "../../services/shared/ids.ts";
import { type Command, UsageError } from "../command.ts";
import { type Cli, RemoteError } from "../context.ts";
import { describe, table } from "../table.ts";

/** Everything the system holds about one order, gathered from the services that own each part. */
export interface OrderReport {
  order: Record<string, unknown>;
  reservation: Record<string, unknown> | null;
  payment: Record<string, unknown> | null;
  receipt: Record<string, unknown> | null;
  /** The saga's messages from the outboxes of orders, inventory and payments, in the order they were written. */
  history: (OutboxEntry & { service: string })[];
}

/** `null` for a 404 (the part does not exist yet), the body otherwise. */
async function optional(call: Promise<unknown>): Promise<unknown> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof RemoteError && err.status === 404) return null;
    throw err;
  }
}

/** Gathers an order's report: orders, inventory, payments (management routes) and notifications (its receipt). */
export async function orderReport(cli: Cli, id: string): Promise<OrderReport> {
  const [o, inv, pay, receipt] = await Promise.all([
    cli.call("orders", `/admin/orders/${id}`) as Promise<{ order: Record<string, unknown>; history: OutboxEntry[] }>,
    optional(cli.call("inventory", `/admin/reservations/${id}`)) as Promise<
      { reservation: Record<string, unknown> | null; history: OutboxEntry[] } | null
    >,
    optional(cli.call("payments", `/admin/payments/${id}`)) as Promise<
      { payment: Record<string, unknown> | null; history: OutboxEntry[] } | null
    >,
    optional(cli.call("notifications", `/receipts/${id}`)) as Promise<Record<string, unknown> | null>,
  ]);
  const history = [
    ...o.history.map((h) => ({ ...h, service: "orders" })),
    ...(inv?.history ?? []).map((h) => ({ ...h, service: "inventory" })),
    ...(pay?.history ?? []).map((h) => ({ ...h, service: "payments" })),
  ].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  return {
    order: o.order,
    reservation: inv?.reservation ?? null,
    payment: pay?.payment ?? null,
    receipt,
    history,
  };
}

export const ordersShow: Command = {
  path: ["orders", "show"],
  args: ["<id>"],
  summary: "Shows an order with its reservation, payment, receipt and saga history, read from each service.",
  details: [
    "The saga history is the messages each service's outbox still holds for the order (published ones are kept for",
    "an hour by default), so an older order shows its state without its history.",
  ],
  async run(cli, input) {
    const id = input.positionals[0];
    if (!isOrderId(id)) throw new UsageError(`${JSON.stringify(id)} is not an order id (a UUID)`);
    let report: OrderReport;
    try {
      report = await orderReport(cli, id);
    } catch (err) {
      if (err instanceof RemoteError && err.status === 404 && err.service === "orders") {
        throw new Error(`no order ${id}`);
      }
      throw err;
    }
    if (cli.json) {
      cli.printJson(report);
      return 0;
    }
    const { order, reservation, payment, receipt, history } = report;
    cli.print(`Order ${order.id}`);
    cli.print(describe(order, "  "));
    cli.print("\nReservation (inventory)");
    cli.print(reservation ? describe(reservation, "  ") : "  (none)");
    cli.print("\nPayment (payments)");
    cli.print(payment ? describe(payment, "  ") : "  (none)");
    cli.print("\nReceipt (notifications)");
    cli.print(receipt ? describe(receipt, "  ") : "  (none)");
    cli.print("\nSaga history");
    cli.print(
      history.length === 0 ? "  (none retained)" : table(
        ["AT", "SERVICE", "TYPE", "TOPIC", "PUBLISHED"],
        history.map((h) => [h.createdAt, h.service, h.type, h.topic, h.publishedAt ?? "waiting"]),
      ).split("\n").map((l) => `  ${l}`).join("\n"),
    );
    return 0;
  },
};
