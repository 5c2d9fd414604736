/** The order the gRPC tests serve and ask for: one fixture instead of a copy per test file. */
import type { Order } from "../../../proto/gen/trellis/orders/v1/orders.ts";

/** An order with `fields` over the fixture's defaults (id `o-1`, customer `c-1`, PENDING, no items). */
export function order(fields: Partial<Order> = {}): Order {
  return {
    id: "o-1",
    customerId: "c-1",
    items: [],
    status: "PENDING",
    totalCents: 0,
    reason: "",
    createdAt: "",
    updatedAt: "",
    ...fields,
  };
}

/** The fixture order. */
export const ORDER: Order = order();

/** A GetOrder request for the fixture order, by any customer. */
export const GET: { id: string; customerId: string } = { id: "o-1", customerId: "" };
