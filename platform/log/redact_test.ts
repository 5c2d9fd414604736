import assert from "node:assert/strict";
import { runWithContext } from "../context/mod.ts";
import { createLogger } from "./logger.ts";
import { registerSecret } from "./redact.ts";

function capture() {
  const lines: string[] = [];
  const logger = createLogger("auth", { level: "debug", write: (line) => lines.push(line) });
  return { logger, lines };
}

Deno.test("a logger redacts the values of secret-named fields, nested ones and header objects included", () => {
  const { logger, lines } = capture();
  logger.info("request", {
    authorization: "Basic b3BzOnMzY3JldA==",
    password: "wonderland",
    clientSecret: "cs-123456",
    nested: { access_token: "abc.def.ghi", keep: "visible", deeper: [{ apiKey: "k-1" }] },
    headers: new Headers({ cookie: "session=1", accept: "json" }),
    orderId: "o-1",
  });
  const line = JSON.parse(lines[0]);
  assert.equal(line.authorization, "[REDACTED]");
  assert.equal(line.password, "[REDACTED]");
  assert.equal(line.clientSecret, "[REDACTED]");
  assert.deepEqual(line.nested, { access_token: "[REDACTED]", keep: "visible", deeper: [{ apiKey: "[REDACTED]" }] });
  assert.deepEqual(line.headers, { accept: "json", cookie: "[REDACTED]" });
  assert.equal(line.orderId, "o-1");
});

Deno.test("a logger replaces registered secret values, JWTs and bearer credentials anywhere in a line", () => {
  const { logger, lines } = capture();
  const value = `s3cret-${crypto.randomUUID()}`;
  registerSecret(value);
  const jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
  logger.with({ note: `configured with ${value}` }).error(`failed with "${value}"`, {
    err: new Error(`connect to postgres://u:${value}@db failed`),
    detail: `header was Bearer ${jwt} and ${jwt}`,
  });
  assert.ok(!lines[0].includes(value), lines[0]);
  assert.ok(!lines[0].includes("eyJzdWIiOiJhbGljZSJ9"), lines[0]);
  const line = JSON.parse(lines[0]);
  assert.equal(line.msg, 'failed with "[REDACTED]"');
  assert.equal(line.note, "configured with [REDACTED]");
  assert.equal(line.detail, "header was Bearer [REDACTED] and [REDACTED]");
});

Deno.test("a log line inside a traced context carries the trace id and this hop's span id", () => {
  const { logger, lines } = capture();
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
  const ctx = { requestId: "r-1", signal: new AbortController().signal, traceId };
  runWithContext({ ...ctx, traceparent: `00-${traceId}-00f067aa0ba902b7-01` }, () => logger.info("inside"));
  runWithContext(ctx, () => logger.info("no span yet"));
  logger.info("outside");
  const [inside, bare, outside] = lines.map((l) => JSON.parse(l));
  assert.equal(inside.traceId, traceId);
  assert.equal(inside.spanId, "00f067aa0ba902b7");
  assert.equal(bare.traceId, traceId);
  assert.equal(bare.spanId, undefined);
  assert.equal(outside.traceId, undefined);
});
