import assert from "node:assert/strict";
import { ApiClient } from "../e2e/scenarios.ts";
import { embeddedSystem } from "../support/system.ts";

Deno.test("the gateway limits each user's rate with 429 + Retry-After, sends security and trace headers, and refuses big bodies", async (t) => {
  await using env = await embeddedSystem({
    env: {
      GATEWAY_RATE_LIMIT_BURST: "3",
      GATEWAY_RATE_LIMIT_PER_SEC: "1",
      GATEWAY_CORS_ORIGINS: "https://shop.example, https://admin.example",
    },
  });
  const alice = await ApiClient.login(env.endpoints);
  const bob = await ApiClient.login(env.endpoints, "bob", "builder");

  await t.step("a user over the burst gets 429 problem+json with Retry-After; another user is unaffected", async () => {
    const statuses: number[] = [];
    let refused;
    for (let i = 0; i < 5; i++) {
      const res = await alice.call("GET", "/v1/products");
      statuses.push(res.status);
      if (res.status === 429) refused = res;
    }
    assert.ok(statuses.slice(0, 3).every((s) => s === 200), `statuses ${statuses}`);
    assert.ok(refused, `no 429 in ${statuses}`);
    assert.equal(refused.headers.get("content-type"), "application/problem+json");
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.equal((await bob.call("GET", "/v1/products")).status, 200);
  });

  await t.step(
    "responses carry security headers, the request id and a traceparent continuing the caller's trace",
    async () => {
      const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
      const res = await bob.call("GET", "/v1/products", undefined, {
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
        "x-request-id": "req-limits-1",
      });
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
      assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'none'/);
      assert.equal(res.headers.get("x-request-id"), "req-limits-1");
      assert.match(res.headers.get("traceparent") ?? "", new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    },
  );

  await t.step("a body over the service limit is refused with 413 problem+json", async () => {
    const res = await bob.call("POST", "/v1/orders", JSON.stringify({ items: [], pad: "x".repeat(2 << 20) }));
    assert.equal(res.status, 413);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
  });

  await t.step("CORS: a preflight from an allowed origin is answered without credentials; others get 403", async () => {
    const preflight = (origin: string) =>
      fetch(`${env.endpoints.gateway}/v1/orders`, {
        method: "OPTIONS",
        headers: {
          origin,
          "access-control-request-method": "POST",
          "access-control-request-headers": "authorization, content-type, idempotency-key",
        },
      });
    const ok = await preflight("https://shop.example");
    await ok.body?.cancel();
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get("access-control-allow-origin"), "https://shop.example");
    assert.match(ok.headers.get("access-control-allow-methods") ?? "", /POST/);
    assert.match(ok.headers.get("access-control-allow-headers") ?? "", /idempotency-key/);
    const refused = await preflight("https://evil.example");
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get("content-type"), "application/problem+json");
    assert.equal(refused.headers.get("access-control-allow-origin"), null);
    await refused.body?.cancel();
  });

  await t.step("CORS: an allowed origin's real request can read the response and the request id", async () => {
    const res = await bob.call("GET", "/v1/products", undefined, { origin: "https://admin.example" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("access-control-allow-origin"), "https://admin.example");
    assert.match(res.headers.get("vary") ?? "", /origin/i);
    assert.match(res.headers.get("access-control-expose-headers") ?? "", /x-request-id/);
  });
});
