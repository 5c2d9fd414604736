import assert from "node:assert/strict";
import { s } from "./schema.ts";
import {
  createMessageRegistry,
  decodeMessage,
  defineMessageType,
  encodeMessage,
  type MessageOf,
  SchemaError,
} from "./registry.ts";

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
function assertType<_T extends true>(): void {}

const Created = defineMessageType({
  type: "orders.created.v1",
  schema: s.object({ orderId: s.string({ minLength: 1 }), total: s.integer({ minimum: 0 }) }),
});
const Cancelled = defineMessageType({ type: "orders.cancelled.v1", schema: s.object({ orderId: s.string() }) });
const registry = createMessageRegistry([Created, Cancelled]);
const enc = new TextEncoder();

Deno.test("defineMessageType() adds the literal type property to the payload type", () => {
  assertType<Equals<MessageOf<typeof Created>, { type: "orders.created.v1"; orderId: string; total: number }>>();
});

Deno.test("defineMessageType() and createMessageRegistry() reject bad names, a declared type and duplicates", () => {
  assert.throws(() => defineMessageType({ type: "OrderCreated", schema: s.object({}) }), TypeError);
  assert.throws(() => defineMessageType({ type: "a.v1", schema: s.object({ type: s.string() }) }), TypeError);
  assert.throws(() => createMessageRegistry([Created, Created]), TypeError);
});

Deno.test("encodeMessage() validates and sets content-type and message-type headers", () => {
  const msg = encodeMessage(registry, { type: "orders.created.v1", orderId: "o-1", total: 3 }, {
    key: "o-1",
    headers: { "x-request-id": "r-1", "message-type": "spoofed" },
  });
  assert.deepEqual(msg.headers, {
    "x-request-id": "r-1",
    "content-type": "application/json",
    "message-type": "orders.created.v1",
  });
  assert.equal(msg.key, "o-1");
  assert.deepEqual(JSON.parse(new TextDecoder().decode(msg.payload)), {
    type: "orders.created.v1",
    orderId: "o-1",
    total: 3,
  });
  assert.throws(
    () => encodeMessage(registry, { type: "orders.created.v1", orderId: "", total: -1 }),
    (err: unknown) =>
      err instanceof SchemaError && err.type === "orders.created.v1" && err.errors.length === 2 &&
      /\/orderId/.test(err.message) && /\/total/.test(err.message),
  );
});

Deno.test("decodeMessage() returns a valid payload of an expected type and ignores unknown properties", () => {
  const payload = enc.encode(JSON.stringify({ type: "orders.cancelled.v1", orderId: "o-1", later: true }));
  const event = decodeMessage(registry, { headers: {}, payload }, ["orders.cancelled.v1"]);
  assertType<Equals<typeof event, { type: "orders.cancelled.v1"; orderId: string }>>();
  assert.equal(event.orderId, "o-1");
});

Deno.test("decodeMessage() throws a non-retryable SchemaError naming the type and every failing path", () => {
  const payload = enc.encode(JSON.stringify({ type: "orders.created.v1", total: "3" }));
  try {
    decodeMessage(registry, { headers: {}, payload }, ["orders.created.v1"]);
    assert.fail("expected a SchemaError");
  } catch (e) {
    assert.ok(e instanceof SchemaError);
    assert.equal(e.retryable, false);
    assert.equal(e.type, "orders.created.v1");
    assert.deepEqual(e.errors.map((v) => v.path), ["/orderId", "/total"]);
    assert.match(e.message, /orders\.created\.v1.*\/orderId is required.*\/total must be an integer/);
  }
});

Deno.test("decodeMessage() rejects bad JSON, an unexpected type and a type disagreeing with its header", () => {
  const check = (headers: Record<string, string>, body: string, expected: RegExp) =>
    assert.throws(
      () => decodeMessage(registry, { headers, payload: enc.encode(body) }, ["orders.created.v1"]),
      (e: unknown) => e instanceof SchemaError && expected.test(e.message),
    );
  check({}, "{not json", /must be UTF-8 JSON/);
  check({}, JSON.stringify({ type: "orders.cancelled.v1", orderId: "o" }), /must be one of orders\.created\.v1/);
  check(
    { "message-type": "orders.cancelled.v1" },
    JSON.stringify({ type: "orders.created.v1", orderId: "o", total: 1 }),
    /must equal the message-type header/,
  );
});
