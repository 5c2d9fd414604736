import assert from "node:assert/strict";
import { HttpError } from "@trellis/platform/http";
import { parseOrderRequest } from "./order_request.ts";

function violations(body: unknown): string[] {
  try {
    parseOrderRequest(body);
  } catch (err) {
    assert.ok(err instanceof HttpError);
    assert.equal(err.status, 422);
    return (err.extensions.errors as { path: string }[]).map((e) => e.path);
  }
  assert.fail("expected a 422");
}

Deno.test("parseOrderRequest() accepts a valid order and defaults the payment token", () => {
  assert.deepEqual(parseOrderRequest({ items: [{ sku: "kettle", quantity: 2 }] }), {
    items: [{ sku: "kettle", quantity: 2 }],
    paymentToken: "tok_visa",
  });
});

Deno.test("parseOrderRequest() lists every invalid field path in one 422", () => {
  const table: [unknown, string[]][] = [
    [null, [""]],
    [[], [""]],
    [{}, ["/items"]],
    [{ items: "x" }, ["/items"]],
    [{ items: [] }, ["/items"]],
    [{ items: [{ sku: "kettle" }] }, ["/items/0/quantity"]],
    [{ items: [{ quantity: 1 }] }, ["/items/0/sku"]],
    [{ items: [{ sku: "Bad SKU!", quantity: 0 }, 7] }, ["/items/0/sku", "/items/0/quantity", "/items/1"]],
    [{ items: [{ sku: "kettle", quantity: 1.5, colour: "red" }] }, ["/items/0/colour", "/items/0/quantity"]],
    [{ items: [{ sku: "kettle", quantity: 1 }], paymentToken: 5, extra: true }, ["/extra", "/paymentToken"]],
  ];
  for (const [body, paths] of table) assert.deepEqual(violations(body), paths, JSON.stringify(body));
});
