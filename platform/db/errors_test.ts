import assert from "node:assert/strict";
import { DatabaseUnavailableError, findDatabaseUnavailable, isConnectionError, isUnreachableError } from "./errors.ts";

const coded = (code: string) => Object.assign(new Error(code), { code });

Deno.test("isConnectionError() knows socket, driver and SQLSTATE connection failures from statement failures", () => {
  for (
    const code of ["ECONNREFUSED", "ECONNRESET", "CONNECT_TIMEOUT", "CONNECTION_CLOSED", "57P01", "57P03", "08006"]
  ) {
    assert.equal(isConnectionError(coded(code)), true, code);
  }
  for (const code of ["23505", "42P01", "57014", "CONNECTION_ENDED"]) {
    assert.equal(isConnectionError(coded(code)), false, code);
  }
  assert.equal(isConnectionError(new DatabaseUnavailableError("down")), true);
  assert.equal(isConnectionError("ECONNREFUSED"), false);
  assert.equal(isConnectionError(undefined), false);
});

Deno.test("isUnreachableError() is true only for a connection that could not be made", () => {
  for (const code of ["ECONNREFUSED", "CONNECT_TIMEOUT", "ENOTFOUND", "57P03"]) {
    assert.equal(isUnreachableError(coded(code)), true);
  }
  for (const code of ["ECONNRESET", "CONNECTION_CLOSED", "57P01"]) assert.equal(isUnreachableError(coded(code)), false);
});

Deno.test("findDatabaseUnavailable() finds the error in a cause chain and nothing in an unrelated one", () => {
  const unavailable = new DatabaseUnavailableError("down", { retryAfterMs: 250 });
  assert.equal(findDatabaseUnavailable(new Error("a", { cause: new Error("b", { cause: unavailable }) })), unavailable);
  assert.equal(findDatabaseUnavailable(new Error("a", { cause: coded("ECONNREFUSED") })), undefined);
  assert.equal(findDatabaseUnavailable("text"), undefined);
});
