import assert from "node:assert/strict";
import { DatabaseUnavailableError } from "./errors.ts";
import { FailFast } from "./fail_fast.ts";

const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
const closed = Object.assign(new Error("write CONNECTION_CLOSED 127.0.0.1:5432"), { code: "CONNECTION_CLOSED" });
const duplicate = Object.assign(new Error("duplicate key"), { code: "23505" });

function clock() {
  const c = { now: 1_000, read: () => c.now };
  return c;
}

Deno.test("FailFast lets every call through until a connect fails, then none until the interval passed", () => {
  const time = clock();
  const failFast = new FailFast(500, time.read);
  assert.equal(failFast.tryAcquire(), true);
  assert.equal(failFast.failed(refused), true);
  assert.equal(failFast.tryAcquire(), false);
  time.now += 499;
  assert.equal(failFast.tryAcquire(), false);
  const error = failFast.error();
  assert.ok(error instanceof DatabaseUnavailableError);
  assert.equal(error.code, "ECONNREFUSED");
  assert.equal(error.cause, refused);
  assert.equal(error.retryAfterMs, 100);
});

Deno.test("FailFast lets one probe through after the interval; its success lets everyone through again", () => {
  const time = clock();
  const failFast = new FailFast(500, time.read);
  failFast.failed(refused);
  time.now += 500;
  assert.equal(failFast.tryAcquire(), true);
  assert.equal(failFast.tryAcquire(), false, "a second probe went through");
  failFast.succeeded();
  assert.equal(failFast.down, false);
  assert.equal(failFast.tryAcquire(), true);
  assert.equal(failFast.tryAcquire(), true);
});

Deno.test("FailFast counts an SQL error as the server answering, and a failed probe as down for another interval", () => {
  const time = clock();
  const failFast = new FailFast(500, time.read);
  failFast.failed(refused);
  time.now += 500;
  assert.equal(failFast.tryAcquire(), true);
  assert.equal(failFast.failed(refused), true);
  time.now += 499;
  assert.equal(failFast.tryAcquire(), false);
  time.now += 1;
  assert.equal(failFast.tryAcquire(), true);
  assert.equal(failFast.failed(duplicate), false);
  assert.equal(failFast.down, false);
});

Deno.test("FailFast does not mark the database down for a broken established connection, nor when turned off", () => {
  const failFast = new FailFast(500);
  assert.equal(failFast.failed(closed), false);
  assert.equal(failFast.tryAcquire(), true);
  const off = new FailFast(0);
  assert.equal(off.failed(refused), false);
  assert.equal(off.tryAcquire(), true);
  assert.throws(() => new FailFast(-1), RangeError);
});

Deno.test("FailFast lets another probe go when the probing caller gave up", () => {
  const time = clock();
  const failFast = new FailFast(500, time.read);
  failFast.failed(refused);
  time.now += 500;
  assert.equal(failFast.tryAcquire(), true);
  failFast.released();
  assert.equal(failFast.tryAcquire(), true);
});
