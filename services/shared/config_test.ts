import assert from "node:assert/strict";
import { loadConfig } from "./config.ts";

Deno.test("loadConfig() reads GATEWAY_CORS_ORIGINS as a list of origins, *, or none", () => {
  assert.deepEqual(loadConfig({}).corsOrigins, []);
  assert.deepEqual(loadConfig({ GATEWAY_CORS_ORIGINS: "" }).corsOrigins, []);
  assert.equal(loadConfig({ GATEWAY_CORS_ORIGINS: " * " }).corsOrigins, "*");
  assert.deepEqual(
    loadConfig({ GATEWAY_CORS_ORIGINS: "https://shop.example, http://127.0.0.1:5173," }).corsOrigins,
    ["https://shop.example", "http://127.0.0.1:5173"],
  );
});

Deno.test("loadConfig() refuses a GATEWAY_CORS_ORIGINS entry that is not an origin, naming the variable", () => {
  for (const bad of ["shop.example", "https://shop.example/", "https://shop.example/path", "ftp://x.example", "*,x"]) {
    assert.throws(
      () => loadConfig({ GATEWAY_CORS_ORIGINS: bad }),
      (err) => err instanceof RangeError && err.message.includes("GATEWAY_CORS_ORIGINS"),
      bad,
    );
  }
});

Deno.test("loadConfig() reads ORDER_DEADLINE_MS and ORDER_SWEEP_MS, defaulting to a 60 s deadline swept every 5 s", () => {
  assert.deepEqual(loadConfig({}).orders, { deadlineMs: 60_000, sweepMs: 5_000 });
  assert.deepEqual(loadConfig({ ORDER_DEADLINE_MS: "5000", ORDER_SWEEP_MS: "500" }).orders, {
    deadlineMs: 5_000,
    sweepMs: 500,
  });
});

Deno.test("loadConfig() refuses an ORDER_DEADLINE_MS or ORDER_SWEEP_MS that is not a number in range, in one line", () => {
  for (
    const [name, bad] of [
      ["ORDER_DEADLINE_MS", "soon"],
      ["ORDER_DEADLINE_MS", "0"],
      ["ORDER_DEADLINE_MS", "-5"],
      ["ORDER_DEADLINE_MS", ""],
      ["ORDER_SWEEP_MS", "1"],
      ["ORDER_SWEEP_MS", "Infinity"],
    ]
  ) {
    assert.throws(
      () => loadConfig({ [name]: bad }),
      (err) =>
        err instanceof RangeError && err.message.startsWith(`Cannot use ${name}=`) && !err.message.includes("\n"),
      `${name}=${bad}`,
    );
  }
});

Deno.test("loadConfig() reads the gateway's idempotency TTL and lease, defaulting to a day and 30 s, and refuses bad ones in one line", () => {
  assert.deepEqual(loadConfig({}).idempotency, { ttlMs: 86_400_000, leaseMs: 30_000 });
  assert.deepEqual(
    loadConfig({ GATEWAY_IDEMPOTENCY_TTL_MS: "3600000", GATEWAY_IDEMPOTENCY_LEASE_MS: "15000" }).idempotency,
    { ttlMs: 3_600_000, leaseMs: 15_000 },
  );
  for (
    const [name, bad] of [
      ["GATEWAY_IDEMPOTENCY_TTL_MS", "a day"],
      ["GATEWAY_IDEMPOTENCY_TTL_MS", "0"],
      ["GATEWAY_IDEMPOTENCY_LEASE_MS", "-1"],
      ["GATEWAY_IDEMPOTENCY_LEASE_MS", "NaN"],
    ]
  ) {
    assert.throws(
      () => loadConfig({ [name]: bad }),
      (err) =>
        err instanceof RangeError && err.message.startsWith(`Cannot use ${name}=`) && !err.message.includes("\n"),
    );
  }
});

Deno.test("loadConfig() reads RECONCILE_INTERVAL_S (0 = on demand only), defaulting to 300", () => {
  assert.equal(loadConfig({}).reconcileIntervalS, 300);
  assert.equal(loadConfig({ RECONCILE_INTERVAL_S: "0" }).reconcileIntervalS, 0);
  assert.equal(loadConfig({ RECONCILE_INTERVAL_S: "2.5" }).reconcileIntervalS, 2.5);
});

Deno.test("loadConfig() refuses a RECONCILE_INTERVAL_S that is not a number of seconds in range, in one line", () => {
  for (const bad of ["often", "-1", "", "Infinity", String(8 * 86_400)]) {
    assert.throws(
      () => loadConfig({ RECONCILE_INTERVAL_S: bad }),
      (err) =>
        err instanceof RangeError && err.message.startsWith("Cannot use RECONCILE_INTERVAL_S=") &&
        !err.message.includes("\n"),
      bad,
    );
  }
});
