import assert from "node:assert/strict";
import { TextLineStream } from "../support/lines.ts";
import { within } from "@trellis/platform/testing";

/**
 * SIGTERM with 100 requests in flight: every one completes with 200, requests after the signal are refused, and the
 * process exits 0 within its drain deadline.
 */
Deno.test("a service drains 100 in-flight requests on SIGTERM, refuses new ones, and exits 0 within the deadline", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./fixtures/slow_service.ts", import.meta.url).pathname],
    env: { SLOW_MS: "600", DRAIN_MS: "5000" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(new TextLineStream());
  const reader = lines.getReader();
  try {
    const url = (await within(reader.read(), 20_000, "the slow service to print its URL")).value!;
    const inFlight = Array.from({ length: 100 }, () =>
      fetch(`${url}/slow`).then(async (res) => {
        await res.body?.cancel();
        return res.status;
      }));
    await new Promise((r) => setTimeout(r, 200));
    const signalled = performance.now();
    child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 50));
    const late = await fetch(`${url}/slow`).then(async (res) => {
      await res.body?.cancel();
      return res.status;
    }, () => "refused");
    const statuses = await within(Promise.all(inFlight), 10_000, "the 100 in-flight requests to complete");
    const { code } = await within(child.status, 10_000, "the service to exit after SIGTERM");
    const exitMs = performance.now() - signalled;
    assert.deepEqual(statuses.filter((s) => s !== 200), [], "every in-flight request completes");
    assert.ok(late === 503 || late === "refused", `a request after SIGTERM got ${late}`);
    assert.equal(code, 0);
    assert.ok(exitMs < 5000, `exited ${exitMs.toFixed(0)} ms after SIGTERM, past the 5 s drain deadline`);
  } finally {
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch { /* already exited */ }
    await within(child.status, 10_000, "the service to die after SIGKILL");
  }
});
