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
