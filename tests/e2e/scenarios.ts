import assert from "node:assert/strict";

/** Where the system under test answers. */
export interface Endpoints {
  gateway: string;
  auth: string;
}

interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
}

/** A logged-in API client of the gateway, as a user of the README walkthrough would be. */
export class ApiClient {
  constructor(readonly endpoints: Endpoints, readonly token: string) {}

  static async login(endpoints: Endpoints, username = "alice", password = "wonderland"): Promise<ApiClient> {
    const res = await fetch(`${endpoints.auth}/oauth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "password", username, password }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const body = await res.json();
    assert.equal(body.token_type, "Bearer");
    return new ApiClient(endpoints, body.access_token);
  }

  async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const res = await fetch(`${this.endpoints.gateway}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  }

  async stock(): Promise<Record<string, number>> {
    const res = await this.call("GET", "/v1/products");
    assert.equal(res.status, 200);
    return Object.fromEntries(res.body.products.map((p: { sku: string; available: number }) => [p.sku, p.available]));
  }

  async placeOrder(items: { sku: string; quantity: number }[], paymentToken?: string, key?: string) {
    const res = await this.call("POST", "/v1/orders", { items, ...(paymentToken ? { paymentToken } : {}) }, {
      ...(key ? { "idempotency-key": key } : {}),
    });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    // A replay of a key the gateway still holds returns the first answer (PENDING); one it no longer holds (another
    // replica, a restart) is answered by orders with the order as it is now, which may have moved on.
    if (!key) assert.equal(res.body.status, "PENDING");
    assert.equal(res.headers.get("location"), `/v1/orders/${res.body.id}`);
    return res.body as { id: string; totalCents: number };
  }

  /** Polls the order until it leaves PENDING; returns the final view with its reservation and payment. */
  async settle(id: string, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const res = await this.call("GET", `/v1/orders/${id}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      if (res.body.status !== "PENDING") return res.body;
      if (Date.now() > deadline) assert.fail(`order ${id} still PENDING after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async receipt(id: string, timeoutMs = 10_000) {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const res = await this.call("GET", `/v1/orders/${id}/receipt`);
      if (res.status === 200 || Date.now() > deadline) return res;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

function assertProblem(res: { status: number; headers: Headers; body: Problem }, status: number, what: string) {
  assert.equal(res.status, status, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.headers.get("content-type"), "application/problem+json", what);
  assert.equal(res.body.status, status, what);
  assert.ok(res.body.type && res.body.title, what);
}

/**
 * The order path end to end: an order that confirms, one cancelled for lack of stock and one whose payment fails,
 * checking final states, stock, payments and receipts; then bad input.
 */
export async function orderScenarios(t: Deno.TestContext, endpoints: Endpoints): Promise<void> {
  const alice = await ApiClient.login(endpoints);

  await t.step("an order with stock and a good card is CONFIRMED, charged, and gets a receipt", async () => {
    const before = await alice.stock();
    const placed = await alice.placeOrder([{ sku: "kettle", quantity: 2 }, { sku: "mug-blue", quantity: 1 }]);
    assert.equal(placed.totalCents, 2 * 3900 + 1200);
    const order = await alice.settle(placed.id);
    assert.equal(order.status, "CONFIRMED", JSON.stringify(order));
    assert.equal(order.reservation.status, "RESERVED");
    assert.equal(order.payment.status, "SUCCEEDED");
    assert.equal(order.payment.amountCents, 8_999 + 1);
    const after = await alice.stock();
    assert.equal(after.kettle, before.kettle - 2);
    assert.equal(after["mug-blue"], before["mug-blue"] - 1);
    const receipt = await alice.receipt(placed.id);
    assert.equal(receipt.status, 200, JSON.stringify(receipt.body));
    assert.equal(receipt.body.orderId, placed.id);
    assert.equal(receipt.body.totalCents, 9000);
  });

  await t.step("an order for more than the stock is CANCELLED and takes no stock and no payment", async () => {
    const before = await alice.stock();
    const placed = await alice.placeOrder([{ sku: "tea-sencha", quantity: 1 }, {
      sku: "teapot-antique",
      quantity: 2,
    }]);
    const order = await alice.settle(placed.id);
    assert.equal(order.status, "CANCELLED");
    assert.equal(order.reason, "out of stock: teapot-antique");
    assert.equal(order.reservation.status, "REJECTED");
    assert.equal(order.payment, null);
    assert.deepEqual(await alice.stock(), before);
    assert.equal((await alice.call("GET", `/v1/orders/${placed.id}/receipt`)).status, 404);
  });

  await t.step("an order whose payment is declined releases its stock and is CANCELLED", async () => {
    const before = await alice.stock();
    const placed = await alice.placeOrder([{ sku: "tea-sencha", quantity: 3 }], "tok_decline");
    const order = await alice.settle(placed.id);
    assert.equal(order.status, "CANCELLED");
    assert.equal(order.reason, "card declined");
    assert.equal(order.reservation.status, "RELEASED");
    assert.equal(order.payment.status, "FAILED");
    assert.deepEqual(await alice.stock(), before);
    assert.equal((await alice.call("GET", `/v1/orders/${placed.id}/receipt`)).status, 404);
  });

  await t.step("repeating a POST with the same Idempotency-Key returns the same order", async () => {
    const key = `key-${crypto.randomUUID()}`;
    const a = await alice.placeOrder([{ sku: "mug-blue", quantity: 1 }], undefined, key);
    const b = await alice.placeOrder([{ sku: "mug-blue", quantity: 1 }], undefined, key);
    assert.equal(a.id, b.id);
    assert.equal((await alice.settle(a.id)).status, "CONFIRMED");
  });

  await t.step("bad input gets a 4xx problem+json, never a 500", async () => {
    const bad = [
      [await alice.call("POST", "/v1/orders", "{not json"), 400, "malformed JSON"],
      [await alice.call("POST", "/v1/orders", "hello", { "content-type": "text/plain" }), 415, "wrong content type"],
      [await alice.call("POST", "/v1/orders", {}), 422, "missing items"],
      [await alice.call("POST", "/v1/orders", { items: [{ sku: "kettle" }] }), 422, "missing quantity"],
      [await alice.call("POST", "/v1/orders", { items: [{ sku: "no-such-thing", quantity: 1 }] }), 422, "unknown sku"],
      [await alice.call("GET", `/v1/orders/${crypto.randomUUID()}`), 404, "unknown order"],
      [await alice.call("DELETE", "/v1/products"), 405, "wrong method"],
      [await new ApiClient(endpoints, "not-a-jwt").call("GET", "/v1/products"), 401, "garbage token"],
      [await new ApiClient(endpoints, alice.token + "x").call("GET", "/v1/products"), 401, "tampered token"],
    ] as const;
    for (const [res, status, what] of bad) assertProblem(res, status, what);
    const anonymous = await fetch(`${endpoints.gateway}/v1/products`);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Bearer/);
    await anonymous.body?.cancel();
    const unknownSku = await alice.call("POST", "/v1/orders", { items: [{ sku: "no-such-thing", quantity: 1 }] });
    assert.match(unknownSku.body.detail, /unknown product: no-such-thing/);
  });

  await t.step("a user without orders:write is refused with 403 naming the scope", async () => {
    const bob = await ApiClient.login(endpoints, "bob", "builder");
    const res = await bob.call("POST", "/v1/orders", { items: [{ sku: "kettle", quantity: 1 }] });
    assertProblem(res, 403, "missing scope");
    assert.match(JSON.stringify(res.body), /orders:write/);
    assert.equal((await bob.call("GET", "/v1/products")).status, 200);
  });

  await t.step("another user's order is answered 404, as if it did not exist", async () => {
    const placed = await alice.placeOrder([{ sku: "mug-blue", quantity: 1 }]);
    const carol = await ApiClient.login(endpoints, "carol", "chocolate");
    assertProblem(await carol.call("GET", `/v1/orders/${placed.id}`), 404, "someone else's order");
    await alice.settle(placed.id);
  });
}
