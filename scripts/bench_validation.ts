/**
 * `deno task bench:validation`: what validating a request body costs per request, our decode function against the
 * schema language of platform/messaging and against zod (for the comparison only: no SDK module imports it, deno.json
 * maps it for this script). Prints microseconds per call, median of 5 runs; the README's "Validating request bodies"
 * table comes from it.
 *
 *   deno task bench:validation [--iterations 200000]
 */
import { z } from "zod";
import { s, validate } from "@trellis/platform/messaging/schema";
import { parseOrderRequest } from "../services/gateway/order_request.ts";

const args = Deno.args;
const iterations = args.includes("--iterations") ? Number(args[args.indexOf("--iterations") + 1]) : 200_000;
if (!Number.isInteger(iterations) || iterations < 1000) {
  console.error(`bench:validation: --iterations must be an integer of at least 1000, got ${iterations}`);
  Deno.exit(2);
}

const SKU = "^[a-z0-9][a-z0-9-]{0,63}$";
const TOKEN = "^[A-Za-z0-9_]{1,64}$";
const body = JSON.stringify({
  items: [{ sku: "kettle", quantity: 2 }, { sku: "mug-blue", quantity: 4 }, { sku: "tea-earl-grey", quantity: 1 }],
  paymentToken: "tok_visa",
});
const invalid = { items: [{ sku: "KETTLE!", quantity: 0, extra: 1 }, "x"], paymentToken: 5, unknown: 1 };
const zodOrder = z.strictObject({
  items: z.array(
    z.strictObject({ sku: z.string().regex(new RegExp(SKU)), quantity: z.number().int().min(1).max(10_000) }),
  )
    .min(1).max(50),
  paymentToken: z.string().regex(new RegExp(TOKEN)).default("tok_visa"),
});
const schemaOrder = s.object({
  items: s.array(s.object({ sku: s.string({ pattern: SKU }), quantity: s.integer({ minimum: 1, maximum: 10_000 }) }), {
    minItems: 1,
    maxItems: 50,
  }),
}, { paymentToken: s.string({ pattern: TOKEN }) });

// Each case checks its own outcome once, so a broken comparison cannot print a figure.
const cases: [string, () => unknown, (r: unknown) => boolean][] = [
  ["JSON.parse of the body (paid by every approach)", () => JSON.parse(body), (r) => typeof r === "object"],
  ["JSON.parse + parseOrderRequest, valid", () => parseOrderRequest(JSON.parse(body)), (r) => r !== undefined],
  ["JSON.parse + schema validate(), valid", () => validate(schemaOrder, JSON.parse(body)), (r) => isOk(r)],
  ["JSON.parse + zod safeParse, valid", () => zodOrder.safeParse(JSON.parse(body)), (r) => isSuccess(r)],
  ["parseOrderRequest, 5 violations", () => catching(() => parseOrderRequest(invalid)), (r) => violations(r) >= 5],
  ["zod safeParse, 5 violations", () => zodOrder.safeParse(invalid), (r) => !isSuccess(r)],
];

for (const [name, run, check] of cases) {
  if (!check(run())) throw new Error(`bench:validation: "${name}" did not give the expected outcome`);
  for (let i = 0; i < iterations / 10; i++) run();
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const start = performance.now();
    for (let i = 0; i < iterations / 5; i++) run();
    runs.push((performance.now() - start) * 1000 / (iterations / 5));
  }
  runs.sort((a, b) => a - b);
  console.log(`${name.padEnd(50)} ${runs[2].toFixed(2).padStart(7)} µs`);
}

function catching(f: () => unknown): unknown {
  try {
    return f();
  } catch (err) {
    return err;
  }
}
function isOk(r: unknown): boolean {
  return (r as { ok?: boolean }).ok === true;
}
function isSuccess(r: unknown): boolean {
  return (r as { success?: boolean }).success === true;
}
function violations(r: unknown): number {
  const errors = (r as { extensions?: { errors?: unknown[] } }).extensions?.errors;
  return errors?.length ?? 0;
}
