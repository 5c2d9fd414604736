import { rejects, strictEqual } from "node:assert/strict";
import { backoffDelay, delay } from "./backoff.ts";
import { within } from "../testing/mod.ts";

Deno.test("backoffDelay() doubles from baseDelayMs per attempt and stops at maxDelayMs", () => {
  const opts = { baseDelayMs: 10, maxDelayMs: 50 };
  strictEqual(backoffDelay(1, opts), 10);
  strictEqual(backoffDelay(2, opts), 20);
  strictEqual(backoffDelay(3, opts), 40);
  strictEqual(backoffDelay(4, opts), 50);
  strictEqual(backoffDelay(1_000, opts), 50);
});

Deno.test("delay() rejects with the signal's reason and clears its timer when aborted", async () => {
  const controller = new AbortController();
  const p = delay(60_000, controller.signal);
  controller.abort(new Error("stop"));
  await rejects(within(p, 1_000, "the aborted delay() to reject"), /stop/);
  await rejects(delay(1, controller.signal), /stop/);
});
