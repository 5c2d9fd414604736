import assert from "node:assert/strict";
import {
  DeadlineExceededError,
  GrpcError,
  grpcError,
  grpcToHttpStatus,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  status,
  UnauthenticatedError,
  UnavailableError,
} from "./errors.ts";

Deno.test("grpcError() builds the typed subclass for each code callers branch on", () => {
  const cases = [
    [status.NOT_FOUND, NotFoundError],
    [status.INVALID_ARGUMENT, InvalidArgumentError],
    [status.UNAVAILABLE, UnavailableError],
    [status.DEADLINE_EXCEEDED, DeadlineExceededError],
    [status.UNAUTHENTICATED, UnauthenticatedError],
    [status.PERMISSION_DENIED, PermissionDeniedError],
  ] as const;
  for (const [code, Class] of cases) {
    const err = grpcError(code, "m");
    assert.ok(err instanceof Class, `${status[code]} -> ${Class.name}`);
    assert.equal(err.code, code);
    assert.equal(err.message, "m");
  }
  const other = grpcError(status.ABORTED, "conflict");
  assert.equal(other.constructor, GrpcError);
  assert.equal(other.code, status.ABORTED);
});

Deno.test("grpcToHttpStatus() maps gRPC codes to the HTTP statuses a gateway answers with", () => {
  assert.equal(grpcToHttpStatus(status.OK), 200);
  assert.equal(grpcToHttpStatus(status.INVALID_ARGUMENT), 400);
  assert.equal(grpcToHttpStatus(status.UNAUTHENTICATED), 401);
  assert.equal(grpcToHttpStatus(status.PERMISSION_DENIED), 403);
  assert.equal(grpcToHttpStatus(status.NOT_FOUND), 404);
  assert.equal(grpcToHttpStatus(status.ALREADY_EXISTS), 409);
  assert.equal(grpcToHttpStatus(status.RESOURCE_EXHAUSTED), 429);
  assert.equal(grpcToHttpStatus(status.INTERNAL), 500);
  assert.equal(grpcToHttpStatus(status.UNAVAILABLE), 503);
  assert.equal(grpcToHttpStatus(status.DEADLINE_EXCEEDED), 504);
  assert.equal(grpcToHttpStatus(99 as status), 500);
});
