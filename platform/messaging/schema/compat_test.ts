import assert from "node:assert/strict";
import { checkCompatibility } from "./compat.ts";
import { s, type Schema } from "./schema.ts";
import { diffSnapshot } from "./snapshot.ts";

const v1 = s.object(
  {
    orderId: s.string({ maxLength: 64 }),
    total: s.integer({ minimum: 0, maximum: 100 }),
    status: s.enum(["NEW", "PAID"]),
    items: s.array(s.object({ sku: s.string() }), { maxItems: 10 }),
  },
  { note: s.string() },
);

function breaking(next: Schema, mode?: "backward" | "forward" | "full"): string[] {
  return checkCompatibility(v1, next, { mode }).problems;
}

Deno.test("checkCompatibility() allows an identical schema and an added optional property", () => {
  assert.deepEqual(checkCompatibility(v1, v1), { compatible: true, problems: [] });
  const next = s.object(v1.required, { ...v1.optional, coupon: s.string() });
  assert.deepEqual(checkCompatibility(v1, next), { compatible: true, problems: [] });
});

Deno.test("checkCompatibility() reports each breaking change with its path and the direction it breaks", () => {
  const cases: [Schema, RegExp][] = [
    [
      s.object({ ...v1.required, customerId: s.string() }, v1.optional),
      /^\/customerId: required property added.*backward/,
    ],
    [s.object({ ...v1.required, note: s.string() }, {}), /^\/note: optional property made required.*backward/],
    [
      s.object({ ...v1.required, orderId: s.string() }, v1.optional),
      /^\/orderId: maxLength raised from 64 to undefined.*forward/,
    ],
    [
      s.object({ ...v1.required, orderId: s.string({ maxLength: 32 }) }, v1.optional),
      /^\/orderId: maxLength lowered.*backward/,
    ],
    [
      s.object({ ...v1.required, total: s.number({ minimum: 0, maximum: 100 }) }, v1.optional),
      /^\/total: integer widened/,
    ],
    [s.object({ ...v1.required, total: s.string() }, v1.optional), /^\/total: kind changed from integer to string/],
    [
      s.object({ ...v1.required, status: s.enum(["NEW", "PAID", "REFUNDED"]) }, v1.optional),
      /enum values added: "REFUNDED".*forward/,
    ],
    [s.object({ ...v1.required, status: s.enum(["NEW"]) }, v1.optional), /enum values removed: "PAID".*backward/],
    [
      s.object({ ...v1.required, items: s.array(s.object({ sku: s.integer() }), { maxItems: 10 }) }, v1.optional),
      /^\/items\/\*\/sku: kind changed/,
    ],
    [
      s.object({ ...v1.required, orderId: s.string({ maxLength: 64, pattern: "^o-" }) }, v1.optional),
      /pattern changed/,
    ],
    [
      s.object({ orderId: v1.required.orderId, status: v1.required.status, items: v1.required.items }, v1.optional),
      /^\/total: required property removed.*forward/,
    ],
    [s.object(v1.required, {}), /^\/note: optional property removed.*never removed/],
  ];
  for (const [next, expected] of cases) {
    const problems = breaking(next);
    assert.ok(problems.some((p) => expected.test(p)), `expected ${expected} in ${JSON.stringify(problems)}`);
  }
});

Deno.test("checkCompatibility() in backward or forward mode reports only changes breaking that direction", () => {
  const widened = s.object({ ...v1.required, total: s.integer({ minimum: 0, maximum: 1000 }) }, v1.optional);
  assert.equal(checkCompatibility(v1, widened, { mode: "backward" }).compatible, true);
  assert.equal(checkCompatibility(v1, widened, { mode: "forward" }).compatible, false);
  const added = s.object({ ...v1.required, customerId: s.string() }, v1.optional);
  assert.equal(checkCompatibility(v1, added, { mode: "forward" }).compatible, true);
  assert.equal(checkCompatibility(v1, added, { mode: "backward" }).compatible, false);
});

Deno.test("diffSnapshot() names the type of each problem and lists added and removed types", () => {
  const diff = diffSnapshot(
    { "a.v1": s.object({ x: s.string() }), "b.v1": s.object({}) },
    { "a.v1": s.object({ x: s.integer() }), "c.v1": s.object({}) },
  );
  assert.equal(diff.problems.length, 2);
  assert.match(diff.problems[0], /^a\.v1: \/x: kind changed from string to integer/);
  assert.deepEqual([diff.added, diff.removed, diff.changed], [["c.v1"], ["b.v1"], true]);
});
