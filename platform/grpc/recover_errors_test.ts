import assert from "node:assert/strict";
import { DatabaseUnavailableError } from "../db/mod.ts";
import { CircuitOpenError } from "../resilience/mod.ts";
import { createLogger } from "../log/mod.ts";
import { type GrpcError, NotFoundError, status } from "./errors.ts";
import { recoverErrors, toGrpcError } from "./recover_errors.ts";
import { incoming } from "./testdata/order.ts";

Deno.test("toGrpcError() keeps GrpcErrors and maps aborts, an unreachable database and anything else", () => {
  const live = incoming().ctx;
  const notFound = new NotFoundError("gone");
  assert.equal(toGrpcError(notFound, live), notFound);
  assert.equal(toGrpcError(new Error("x"), live).code, status.INTERNAL);
  assert.equal(toGrpcError(new Error("x"), live).message, "internal error");
  const down = new Error("query failed", { cause: new DatabaseUnavailableError("connection refused") });
  assert.equal(toGrpcError(down, live).code, status.UNAVAILABLE);
  const timedOut = { ...live, signal: AbortSignal.abort(new DOMException("late", "TimeoutError")) };
  assert.equal(toGrpcError(new Error("x"), timedOut).code, status.DEADLINE_EXCEEDED);
  const cancelled = { ...live, signal: AbortSignal.abort() };
  assert.equal(toGrpcError(new Error("x"), cancelled).code, status.CANCELLED);
});

Deno.test("recoverErrors() rethrows what the client gets and logs only the unexpected failures", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("test", { write: (line) => lines.push(JSON.parse(line)) });
  const recover = recoverErrors({ logger });
  await assert.rejects(recover(() => Promise.reject(new NotFoundError("gone")))(incoming()), NotFoundError);
  assert.equal(lines.length, 0);
  await assert.rejects(recover(() => Promise.reject(new TypeError("bug")))(incoming()), (err: GrpcError) => {
    assert.equal(err.code, status.INTERNAL);
    assert.ok(err.cause instanceof TypeError);
    return true;
  });
  assert.equal(lines.length, 1);
  assert.equal(lines[0].method, "/test.v1.Test/Get");
});

Deno.test("toGrpcError() answers a dependency's open circuit UNAVAILABLE, so callers may retry later", () => {
  const ctx = { requestId: "r-1", signal: new AbortController().signal };
  const err = toGrpcError(new Error("pricing failed", { cause: new CircuitOpenError("inventory", 1_000) }), ctx);
  assert.equal(err.code, status.UNAVAILABLE);
  assert.match(err.message, /inventory/);
});
