import assert from "node:assert/strict";
import { Metadata } from "@grpc/grpc-js";
import { createLogger } from "../log/mod.ts";
import { authorization } from "./authorization.ts";
import { PermissionDeniedError, UnauthenticatedError } from "./errors.ts";
import type { UnaryCall } from "./interceptor.ts";

function incoming(metadata = new Metadata()): UnaryCall {
  return {
    method: "/test.v1.Test/Get",
    request: { id: "1" },
    metadata,
    ctx: { requestId: "r-1", signal: new AbortController().signal },
  };
}

Deno.test("authorization() refuses before the handler and hands the principal to the call's context", async () => {
  let reached = 0;
  const handle = authorization((metadata) =>
    metadata.get("authorization")[0] === "Bearer ok" ? { sub: "svc", scopes: [] } : undefined
  )((call) => {
    reached++;
    return Promise.resolve(call.ctx.principal?.sub);
  });
  await assert.rejects(handle(incoming()), UnauthenticatedError);
  assert.equal(reached, 0);
  const metadata = new Metadata();
  metadata.set("authorization", "Bearer ok");
  assert.equal(await handle(incoming(metadata)), "svc");

  const lines: string[] = [];
  const deny = authorization(() => {
    throw new Error("scope missing");
  }, { logger: createLogger("test", { write: (line) => lines.push(line) }) })(() => Promise.resolve("never"));
  await assert.rejects(deny(incoming()), PermissionDeniedError);
  assert.equal(lines.length, 1);
});
