import assert from "node:assert/strict";
import { isOrderId } from "./ids.ts";

Deno.test("isOrderId() accepts what crypto.randomUUID() makes and nothing else", () => {
  for (let i = 0; i < 100; i++) assert.ok(isOrderId(crypto.randomUUID()));
  for (const bad of ["", "o-1", "../etc/passwd", crypto.randomUUID().toUpperCase(), `${crypto.randomUUID()}\n`, 42]) {
    assert.equal(isOrderId(bad), false, JSON.stringify(bad));
  }
});
