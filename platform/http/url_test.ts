import assert from "node:assert/strict";
import { pathnameOf } from "./url.ts";

Deno.test("pathnameOf() gives each request its own normalised pathname, also when requests interleave", () => {
  const a = new Request("http://api/v1/./orders/%7Bx%7D?q=1");
  const b = new Request("http://api/v1/../healthz");
  assert.equal(pathnameOf(a), "/v1/orders/%7Bx%7D");
  assert.equal(pathnameOf(b), "/healthz");
  assert.equal(pathnameOf(a), "/v1/orders/%7Bx%7D");
  assert.equal(pathnameOf(a), new URL(a.url).pathname);
});
