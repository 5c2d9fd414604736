import assert from "node:assert/strict";
import { runWithContext } from "../context/mod.ts";
import { createLogger, type Level, type LoggerOptions } from "./logger.ts";

function capture(service = "orders", options: LoggerOptions = {}) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger(service, {
    level: "debug",
    ...options,
    write: (line) => lines.push(JSON.parse(line)),
  });
  return { log, lines };
}

Deno.test("createLogger() writes one JSON line with ts, level, service, msg and fields", () => {
  const raw: string[] = [];
  const log = createLogger("orders", { level: "info", write: (l) => raw.push(l) });
  log.info("order created", { orderId: "o-1", total: 42 });
  assert.equal(raw.length, 1);
  assert.ok(!raw[0].includes("\n"));
  const line = JSON.parse(raw[0]);
  assert.ok(!Number.isNaN(Date.parse(line.ts)));
  assert.deepEqual({ ...line, ts: undefined }, {
    ts: undefined,
    level: "info",
    service: "orders",
    msg: "order created",
    orderId: "o-1",
    total: 42,
  });
});

Deno.test("createLogger() writes only lines at or above its level", () => {
  const levels: Level[] = ["debug", "info", "warn", "error"];
  const cases: { level: Level; want: Level[] }[] = [
    { level: "debug", want: ["debug", "info", "warn", "error"] },
    { level: "info", want: ["info", "warn", "error"] },
    { level: "warn", want: ["warn", "error"] },
    { level: "error", want: ["error"] },
  ];
  for (const c of cases) {
    const { log, lines } = capture("svc", { level: c.level });
    for (const l of levels) log[l](`at ${l}`);
    assert.deepEqual(lines.map((l) => l.level), c.want, `level ${c.level}`);
  }
});

Deno.test("createLogger() takes its level from LOG_LEVEL when none is given, and ignores a bad one", () => {
  const saved = Deno.env.get("LOG_LEVEL");
  try {
    const cases: { env: string; want: Level[] }[] = [
      { env: "warn", want: ["warn", "error"] },
      { env: "debug", want: ["debug", "info", "warn", "error"] },
      { env: "loud", want: ["info", "warn", "error"] },
    ];
    for (const c of cases) {
      Deno.env.set("LOG_LEVEL", c.env);
      const lines: string[] = [];
      const log = createLogger("svc", { write: (l) => lines.push(l) });
      for (const l of ["debug", "info", "warn", "error"] as const) log[l]("x");
      assert.deepEqual(lines.map((l) => JSON.parse(l).level), c.want, `LOG_LEVEL=${c.env}`);
    }
  } finally {
    if (saved === undefined) Deno.env.delete("LOG_LEVEL");
    else Deno.env.set("LOG_LEVEL", saved);
  }
});

Deno.test("createLogger() adds the request id of the current context, and none outside one", async () => {
  const { log, lines } = capture();
  log.info("outside");
  await runWithContext({ requestId: "req-7", signal: new AbortController().signal }, async () => {
    await Promise.resolve();
    log.info("inside");
  });
  assert.equal("requestId" in lines[0], false);
  assert.equal(lines[1].requestId, "req-7");
});

Deno.test("with() returns a logger whose lines carry its fields, merged and overridable per call", () => {
  const { log, lines } = capture();
  const child = log.with({ component: "saga", attempt: 1 }).with({ orderId: "o-1" });
  child.info("step", { attempt: 2 });
  log.info("parent");
  assert.equal(lines[0].component, "saga");
  assert.equal(lines[0].orderId, "o-1");
  assert.equal(lines[0].attempt, 2);
  assert.equal(lines[0].service, "orders");
  assert.equal("component" in lines[1], false, "with() does not change the parent");
});

Deno.test("createLogger() serialises Error fields as name, message and stack", () => {
  const { log, lines } = capture();
  const err = new TypeError("boom");
  log.error("failed", { err });
  log.with({ cause: new RangeError("bad range") }).warn("context error");
  assert.deepEqual(lines[0].err, { name: "TypeError", message: "boom", stack: err.stack });
  assert.equal((lines[1].cause as { name: string }).name, "RangeError");
  assert.equal((lines[1].cause as { message: string }).message, "bad range");
});
