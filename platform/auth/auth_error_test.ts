import assert from "node:assert/strict";
import { AuthError } from "./auth_error.ts";

Deno.test("AuthError maps each OAuth error code to its HTTP status", () => {
  assert.equal(new AuthError("invalid_request", "x").status, 400);
  assert.equal(new AuthError("invalid_token", "x").status, 401);
  assert.equal(new AuthError("insufficient_scope", "x").status, 403);
  assert.equal(new AuthError("temporarily_unavailable", "x").status, 503);
});

Deno.test("AuthError strips quotes, backslashes and control characters so the description fits a header", () => {
  const err = new AuthError("invalid_token", 'bad "kid"\\\r\n value');
  assert.equal(err.description, "bad kid value");
  assert.equal(err.error, "invalid_token");
  assert.equal(err.name, "AuthError");
});
