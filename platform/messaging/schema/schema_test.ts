import assert from "node:assert/strict";
import { type Infer, is, s, validate } from "./schema.ts";

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
function assertType<_T extends true>(): void {}

const Order = s.object(
  {
    id: s.string({ pattern: "^o-[0-9]+$", maxLength: 8 }),
    total: s.integer({ minimum: 0, maximum: 100 }),
    rate: s.number({ maximum: 1 }),
    paid: s.boolean(),
    currency: s.enum(["EUR", "USD"]),
    items: s.array(s.object({ sku: s.string({ minLength: 1 }) }), { minItems: 1, maxItems: 2 }),
  },
  { note: s.string(), address: s.object({ city: s.string() }) },
);

Deno.test("Infer<> derives required, optional, literal and nested types from a schema", () => {
  assertType<
    Equals<Infer<typeof Order>, {
      id: string;
      total: number;
      rate: number;
      paid: boolean;
      currency: "EUR" | "USD";
      items: { sku: string }[];
      note?: string;
      address?: { city: string };
    }>
  >();
});

Deno.test("validate() accepts a matching value and ignores properties the schema does not name", () => {
  const value = { id: "o-1", total: 5, rate: 0.5, paid: true, currency: "EUR", items: [{ sku: "a" }], extra: 1 };
  assert.deepEqual(validate(Order, value), { ok: true });
  assert.equal(is(Order, value), true);
});

Deno.test("validate() lists every violation with a JSON pointer", () => {
  const result = validate(Order, {
    id: "x/1",
    total: 1.5,
    rate: 2,
    currency: "GBP",
    items: [{ sku: "" }, { sku: 1 }, {}],
    note: null,
    address: { city: 3 },
  });
  assert.deepEqual(result, {
    ok: false,
    errors: [
      { path: "/id", reason: "must match /^o-[0-9]+$/" },
      { path: "/total", reason: "must be an integer, is number 1.5" },
      { path: "/rate", reason: "must be at most 1, is 2" },
      { path: "/paid", reason: "is required" },
      { path: "/currency", reason: 'must be one of "EUR", "USD", is string "GBP"' },
      { path: "/items", reason: "must hold at most 2 items, holds 3" },
      { path: "/items/0/sku", reason: "must be at least 1 characters long, is 0" },
      { path: "/items/1/sku", reason: "must be a string, is number 1" },
      { path: "/items/2/sku", reason: "is required" },
      { path: "/note", reason: "must be a string, is null" },
      { path: "/address/city", reason: "must be a string, is number 3" },
    ],
  });
});

Deno.test("validate() escapes ~ and / in JSON pointers and reports a wrong root at the empty path", () => {
  assert.deepEqual(validate(s.object({ "a/b~": s.boolean() }), { "a/b~": 1 }), {
    ok: false,
    errors: [{ path: "/a~1b~0", reason: "must be a boolean, is number 1" }],
  });
  assert.deepEqual(validate(Order, []), {
    ok: false,
    errors: [{ path: "", reason: "must be an object, is an array" }],
  });
});

Deno.test("validate() counts string length in code points and rejects non-finite numbers", () => {
  assert.equal(validate(s.string({ maxLength: 1 }), "😀").ok, true);
  assert.equal(validate(s.number(), Infinity).ok, false);
  assert.equal(validate(s.number(), NaN).ok, false);
});

Deno.test("s builders throw RangeError or TypeError on bad arguments", () => {
  assert.throws(() => s.string({ minLength: 3, maxLength: 2 }), RangeError);
  assert.throws(() => s.string({ maxLength: -1 }), RangeError);
  assert.throws(() => s.integer({ minimum: NaN }), RangeError);
  assert.throws(() => s.string({ pattern: "(" }), SyntaxError);
  assert.throws(() => s.enum([]), RangeError);
  assert.throws(() => s.object({ a: s.string() }, { a: s.string() }), TypeError);
});

Deno.test("schemas are plain JSON that round-trips unchanged", () => {
  assert.deepEqual(JSON.parse(JSON.stringify(Order)), Order);
});
