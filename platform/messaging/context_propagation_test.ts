import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { currentContext, runWithContext } from "../context/mod.ts";
import { handleInContext, outgoingHeaders } from "./context_propagation.ts";

Deno.test("outgoingHeaders() copies the current context and lets explicit headers win", () => {
  const ctx = { requestId: "r-1", traceparent: "tp", deadline: 123, signal: new AbortController().signal };
  const headers = runWithContext(ctx, () => outgoingHeaders({ "x-request-id": "mine", a: "b" }));
  deepStrictEqual(headers, { "x-request-id": "mine", traceparent: "tp", "x-deadline-ms": "123", a: "b" });
  deepStrictEqual(outgoingHeaders(), {});
});

Deno.test("handleInContext() runs the handler in a context restored from the message headers", async () => {
  const deadline = Date.now() + 60_000;
  const msg = {
    id: "m",
    headers: { "x-request-id": "r-2", "x-deadline-ms": String(deadline) },
    payload: new Uint8Array(),
    attempt: 1,
    timestamp: 0,
  };
  let seen: [string | undefined, number | undefined] = [undefined, undefined];
  await handleInContext(() => {
    seen = [currentContext()?.requestId, currentContext()?.deadline];
  }, msg);
  deepStrictEqual(seen, ["r-2", deadline]);
  strictEqual(currentContext(), undefined);
});
