/**
 * The one pattern per kind of id the services check at their edges. An order id is the UUID the orders service
 * gives it (`crypto.randomUUID()`, lower-case); anything else names no order, so the gateway, orders and
 * notifications turn it away (404, or a failed message) before it reaches a database or a file name.
 */
export const ORDER_ID: RegExp = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether `value` is an order id (see {@linkcode ORDER_ID}). */
export function isOrderId(value: unknown): value is string {
  return typeof value === "string" && ORDER_ID.test(value);
}
