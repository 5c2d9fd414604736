import { ok, rejects, strictEqual } from "node:assert/strict";
import { childContext, runWithContext } from "../../context/mod.ts";
import type { Message } from "../message.ts";
import { RequestTimeoutError } from "../request_errors.ts";
import { within } from "../../testing/mod.ts";
import {
  assertRequestOptions,
  awaitReply,
  DEFAULT_REQUEST_TIMEOUT_MS,
  requestDeadline,
  requestExpired,
  respondOnce,
} from "./_request.ts";

const answer: Message = { id: "r", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 };

Deno.test("requestDeadline() takes the earliest bound, the default only when nothing bounds the wait", () => {
  const now = Date.now();
  const byDefault = requestDeadline(undefined) ?? 0;
  ok(byDefault >= now + DEFAULT_REQUEST_TIMEOUT_MS && byDefault <= Date.now() + DEFAULT_REQUEST_TIMEOUT_MS);
  strictEqual(requestDeadline({ signal: new AbortController().signal }), undefined);
  const { ctx, dispose } = childContext(undefined, { deadline: now + 200 });
  try {
    runWithContext(ctx, () => {
      strictEqual(requestDeadline(undefined), now + 200);
      strictEqual(requestDeadline({ timeoutMs: 60_000 }), now + 200);
      ok((requestDeadline({ timeoutMs: 50 }) ?? Infinity) < now + 200);
    });
  } finally {
    dispose();
  }
});

Deno.test("awaitReply() rejects with a signal's own reason, and with RequestTimeoutError for a TimeoutError", async () => {
  const cleaned: string[] = [];
  const leaving = new AbortController();
  const waiting = awaitReply("t", { signal: leaving.signal }, undefined, new Set(), () => () => cleaned.push("a"));
  leaving.abort(new Error("gone"));
  await rejects(within(waiting, 1_000, "the aborted request"), /gone/);
  const timedOut = new AbortController();
  const late = awaitReply("t", { signal: timedOut.signal }, undefined, new Set(), () => () => cleaned.push("b"));
  timedOut.abort(new DOMException("late", "TimeoutError"));
  const err = await within(late.then(() => undefined, (e) => e), 1_000, "the timed-out request");
  ok(err instanceof RequestTimeoutError, `${err}`);
  strictEqual(cleaned.join(), "a,b");
});

Deno.test("awaitReply() does not send a request whose signal already aborted", async () => {
  let sent = false;
  const signal = AbortSignal.abort(new Error("before"));
  await rejects(awaitReply("t", { signal }, undefined, new Set(), () => void (sent = true)), /before/);
  strictEqual(sent, false);
});

Deno.test("awaitReply() cleans up once after an answer given inside send, and leaves pending empty", async () => {
  let cleanups = 0;
  const pending = new Set<(err: unknown) => void>();
  const reply = await awaitReply("t", undefined, Date.now() + 1_000, pending, (answered) => {
    answered(answer);
    return () => cleanups++;
  });
  strictEqual(reply, answer);
  strictEqual(cleanups, 1);
  strictEqual(pending.size, 0);
});

Deno.test("respondOnce() keeps the answer for a valid response when a bad one was refused", async () => {
  const sent: string[] = [];
  const respond = respondOnce("req-1", (response) => {
    if (response.payload.byteLength === 0) throw new TypeError("empty");
    sent.push(new TextDecoder().decode(response.payload));
    return Promise.resolve();
  });
  await rejects(respond({ payload: new Uint8Array() }), TypeError);
  await respond({ payload: new TextEncoder().encode("ok") });
  await rejects(respond({ payload: new TextEncoder().encode("again") }), /already answered/);
  strictEqual(sent.join(), "ok");
});

Deno.test("assertRequestOptions() and requestExpired() check their inputs", () => {
  assertRequestOptions(undefined);
  for (const timeoutMs of [0, -1, NaN, Infinity]) {
    let thrown: unknown;
    try {
      assertRequestOptions({ timeoutMs });
    } catch (err) {
      thrown = err;
    }
    ok(thrown instanceof RangeError, `timeoutMs ${timeoutMs}`);
  }
  strictEqual(requestExpired({}), false);
  strictEqual(requestExpired({ "x-deadline-ms": String(Date.now() + 60_000) }), false);
  strictEqual(requestExpired({ "x-deadline-ms": "1" }), true);
});
