import { unprocessable } from "@trellis/platform/http";
import type { Item } from "../shared/events.ts";

/** A validated `POST /v1/orders` body. */
export interface OrderRequest {
  items: Item[];
  paymentToken: string;
}

const SKU = /^[a-z0-9][a-z0-9-]{0,63}$/;
const TOKEN = /^[A-Za-z0-9_]{1,64}$/;
export const MAX_ITEMS = 50;
export const MAX_QUANTITY = 10_000;

/**
 * Checks a decoded JSON body against the order schema and lists every violation (path and reason) in one 422.
 *
 * @example
 * ```ts
 * import { parseOrderRequest } from "./order_request.ts";
 * parseOrderRequest({ items: [{ sku: "kettle", quantity: 1 }], paymentToken: "tok_visa" });
 * ```
 */
export function parseOrderRequest(body: unknown): OrderRequest {
  const errors: { path: string; reason: string }[] = [];
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw unprocessable([{ path: "", reason: "must be a JSON object" }]);
  }
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (k !== "items" && k !== "paymentToken") errors.push({ path: `/${k}`, reason: "is not a known field" });
  }
  const items: Item[] = [];
  if (!Array.isArray(b.items)) {
    errors.push({ path: "/items", reason: b.items === undefined ? "is required" : "must be an array" });
  } else if (b.items.length === 0 || b.items.length > MAX_ITEMS) {
    errors.push({ path: "/items", reason: `must hold 1 to ${MAX_ITEMS} items` });
  } else {
    b.items.forEach((it: unknown, i: number) => {
      const at = `/items/${i}`;
      if (typeof it !== "object" || it === null || Array.isArray(it)) {
        errors.push({ path: at, reason: "must be an object" });
        return;
      }
      const { sku, quantity, ...rest } = it as Record<string, unknown>;
      for (const k of Object.keys(rest)) errors.push({ path: `${at}/${k}`, reason: "is not a known field" });
      if (typeof sku !== "string" || !SKU.test(sku)) {
        errors.push({ path: `${at}/sku`, reason: sku === undefined ? "is required" : "must be a product SKU" });
      }
      if (!Number.isInteger(quantity) || (quantity as number) < 1 || (quantity as number) > MAX_QUANTITY) {
        errors.push({
          path: `${at}/quantity`,
          reason: quantity === undefined ? "is required" : `must be an integer from 1 to ${MAX_QUANTITY}`,
        });
      }
      if (typeof sku === "string" && Number.isInteger(quantity)) items.push({ sku, quantity: quantity as number });
    });
  }
  const paymentToken = b.paymentToken ?? "tok_visa";
  if (typeof paymentToken !== "string" || !TOKEN.test(paymentToken)) {
    errors.push({ path: "/paymentToken", reason: "must be a payment token such as tok_visa" });
  }
  if (errors.length > 0) throw unprocessable(errors);
  return { items, paymentToken: paymentToken as string };
}
