import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import {
  childContext,
  type Context,
  contextFromHeaders,
  contextHeaders,
  currentContext,
  isValidRequestId,
  newRequestId,
  openContext,
  remainingMs,
  runWithContext,
} from "./context.ts";
import { within } from "../testing/mod.ts";

function ctxOf(fields: Partial<Context> = {}): Context {
  return { requestId: "r-1", signal: new AbortController().signal, ...fields };
}

function aborted(signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve(signal.reason);
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(signal.reason), { once: true }));
}

Deno.test("currentContext() is undefined outside runWithContext()", () => {
  assert.equal(currentContext(), undefined);
});

Deno.test("runWithContext() keeps the context across awaits and timers, and restores none afterwards", async () => {
  const ctx = ctxOf({ requestId: "across-awaits" });
  const seen = await runWithContext(ctx, async () => {
    const before = currentContext();
    await Promise.resolve();
    await new Promise((r) => setTimeout(r, 0));
    const inTimer = await new Promise<Context | undefined>((r) => setTimeout(() => r(currentContext()), 0));
    return [before, currentContext(), inTimer];
  });
  for (const c of seen) assert.equal(c, ctx);
  assert.equal(currentContext(), undefined);
});

Deno.test("runWithContext() keeps concurrent units of work apart", async () => {
  const ids = await Promise.all(["a", "b", "c"].map((id, i) =>
    runWithContext(ctxOf({ requestId: id }), async () => {
      await new Promise((r) => setTimeout(r, 3 - i));
      return currentContext()?.requestId;
    })
  ));
  assert.deepEqual(ids, ["a", "b", "c"]);
});

Deno.test("runWithContext() nests, and the inner context ends with its function", () => {
  const outer = ctxOf({ requestId: "outer" });
  const inner = ctxOf({ requestId: "inner" });
  runWithContext(outer, () => {
    assert.equal(runWithContext(inner, () => currentContext()), inner);
    assert.equal(currentContext(), outer);
  });
});

Deno.test("contextHeaders() renders request id, traceparent and deadline, and nothing outside a context", () => {
  const cases: { name: string; ctx?: Context; want: Record<string, string> }[] = [
    { name: "no context", want: {} },
    { name: "request id only", ctx: ctxOf(), want: { "x-request-id": "r-1" } },
    {
      name: "everything",
      ctx: ctxOf({ traceparent: "00-abc-def-01", deadline: 1_700_000_000_000 }),
      want: { "x-request-id": "r-1", traceparent: "00-abc-def-01", "x-deadline-ms": "1700000000000" },
    },
  ];
  for (const c of cases) assert.deepEqual(contextHeaders(c.ctx), c.want, c.name);
});

Deno.test("contextHeaders() reads the current context by default", () => {
  runWithContext(ctxOf({ requestId: "from-store" }), () => {
    assert.deepEqual(contextHeaders(), { "x-request-id": "from-store" });
  });
});

Deno.test("contextFromHeaders() adopts a valid x-request-id and replaces an invalid or missing one", () => {
  const cases: { name: string; id: string | null; adopted: boolean }[] = [
    { name: "simple", id: "abc-123", adopted: true },
    { name: "allowed punctuation", id: "svc.a:b_c-1", adopted: true },
    { name: "128 characters", id: "a".repeat(128), adopted: true },
    { name: "missing", id: null, adopted: false },
    { name: "empty", id: "", adopted: false },
    { name: "too long", id: "a".repeat(129), adopted: false },
    { name: "space", id: "abc 123", adopted: false },
    { name: "control character", id: "abc\u0001", adopted: false },
    { name: "newline (log injection)", id: "abc\nlevel=error", adopted: false },
    { name: "non-ASCII", id: "café", adopted: false },
  ];
  for (const c of cases) {
    const { ctx, dispose } = contextFromHeaders((n) => n === "x-request-id" ? c.id : null);
    dispose();
    if (c.adopted) assert.equal(ctx.requestId, c.id, c.name);
    else {
      assert.notEqual(ctx.requestId, c.id, c.name);
      assert.ok(isValidRequestId(ctx.requestId), c.name);
    }
  }
});

Deno.test("contextFromHeaders() reads traceparent and x-deadline-ms from Headers", () => {
  const deadline = Date.now() + 60_000;
  const { ctx, dispose } = contextFromHeaders(
    new Headers({ "x-request-id": "r-9", traceparent: "00-t-s-01", "x-deadline-ms": String(deadline) }),
    { defaultBudgetMs: 5 },
  );
  dispose();
  assert.equal(ctx.requestId, "r-9");
  assert.equal(ctx.traceparent, "00-t-s-01");
  assert.equal(ctx.deadline, deadline, "an incoming deadline wins over the default budget");
  assert.equal(ctx.signal.aborted, false);
});

Deno.test("contextFromHeaders() ignores an unusable x-deadline-ms and falls back to the default budget", () => {
  for (const raw of [null, "", "soon", "-5", "0", "Infinity"]) {
    const before = Date.now();
    const { ctx, dispose } = contextFromHeaders((n) => n === "x-deadline-ms" ? raw : null, { defaultBudgetMs: 2_000 });
    dispose();
    assert.ok(ctx.deadline! >= before + 2_000 && ctx.deadline! <= Date.now() + 2_000, `x-deadline-ms=${raw}`);
  }
});

Deno.test("contextFromHeaders() sets no deadline when there is neither a header nor a default budget", () => {
  const { ctx, dispose } = contextFromHeaders(new Headers());
  dispose();
  assert.equal(ctx.deadline, undefined);
  assert.equal(remainingMs(ctx), undefined);
});

Deno.test("contextFromHeaders() aborts the signal with a TimeoutError when the deadline passes", async () => {
  const { ctx, dispose } = contextFromHeaders(new Headers(), { defaultBudgetMs: 20 });
  try {
    assert.equal(ctx.signal.aborted, false);
    const reason = await aborted(ctx.signal);
    assert.ok(reason instanceof DOMException);
    assert.equal(reason.name, "TimeoutError");
    assert.ok(Date.now() >= ctx.deadline!);
  } finally {
    dispose();
  }
});

Deno.test("contextFromHeaders() aborts at once when the incoming deadline has already passed", async () => {
  const { ctx, dispose } = contextFromHeaders(new Headers({ "x-deadline-ms": String(Date.now() - 1_000) }));
  try {
    assert.equal((await aborted(ctx.signal) as DOMException).name, "TimeoutError");
  } finally {
    dispose();
  }
});

Deno.test("contextFromHeaders() does not abort early for a deadline beyond the 32-bit timer range", async () => {
  // setTimeout treats delays over 2^31-1 ms (~24.8 days) as 1 ms, which turned far deadlines into instant 504s.
  const far = Date.now() + 30 * 24 * 3600 * 1000;
  const { ctx, dispose } = contextFromHeaders(new Headers({ "x-deadline-ms": String(far) }));
  try {
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(ctx.signal.aborted, false);
    assert.equal(ctx.deadline, far);
  } finally {
    dispose();
  }
});

Deno.test("contextFromHeaders() propagates the parent signal's abort and reason", async () => {
  const parent = new AbortController();
  const { ctx, dispose } = contextFromHeaders(new Headers(), { defaultBudgetMs: 60_000, signal: parent.signal });
  try {
    const why = new Error("client went away");
    parent.abort(why);
    assert.equal(await aborted(ctx.signal), why);
  } finally {
    dispose();
  }
});

Deno.test("contextFromHeaders() starts aborted when the parent signal already is", () => {
  const why = new Error("already gone");
  const { ctx, dispose } = contextFromHeaders(new Headers(), { signal: AbortSignal.abort(why) });
  dispose();
  assert.equal(ctx.signal.aborted, true);
  assert.equal(ctx.signal.reason, why);
});

Deno.test("contextFromHeaders() dispose() clears the deadline timer and detaches from the parent", async () => {
  // The op sanitizer fails this test if the 60 s timer is still pending when it ends.
  const parent = new AbortController();
  const { ctx, dispose } = contextFromHeaders(new Headers(), { defaultBudgetMs: 60_000, signal: parent.signal });
  dispose();
  parent.abort();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(ctx.signal.aborted, false);
});

Deno.test("remainingMs() counts down to the deadline and never goes below zero", () => {
  const cases: { name: string; deadline?: number; min?: number; max?: number; want?: number }[] = [
    { name: "no deadline", want: undefined },
    { name: "future", deadline: Date.now() + 5_000, min: 4_000, max: 5_000 },
    { name: "past", deadline: Date.now() - 5_000, want: 0 },
  ];
  for (const c of cases) {
    const got = remainingMs(ctxOf({ deadline: c.deadline }));
    if (c.min === undefined) assert.equal(got, c.want, c.name);
    else assert.ok(got! >= c.min && got! <= c.max!, `${c.name}: ${got}`);
  }
});

Deno.test("remainingMs() reads the current context by default and is undefined outside one", () => {
  assert.equal(remainingMs(), undefined);
  runWithContext(ctxOf({ deadline: Date.now() - 1 }), () => assert.equal(remainingMs(), 0));
});

Deno.test("newRequestId() returns distinct ids that are themselves valid request ids", () => {
  const ids = Array.from({ length: 10_000 }, () => newRequestId());
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids.slice(0, 100)) assert.ok(isValidRequestId(id), id);
});

Deno.test("a disposed context no longer reaches its parent signal or its onEnd callback, so it cannot keep a request alive", async () => {
  // The runtime's AsyncLocalStorage holds each store in a WeakMap whose young values V8's scavenger copies whole:
  // a finished context that still reached its request made every minor GC under load copy thousands of requests.
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  // Only the closures handed to the context capture the request: this function's scope ends when it returns.
  const open = () => {
    const req = { controller: new AbortController(), payload: new Uint8Array(1024) };
    const { ctx, dispose } = contextFromHeaders(new Headers(), {
      defaultBudgetMs: 60_000,
      signal: () => req.controller.signal,
      onEnd: () => void req.payload,
    });
    return { ctx, dispose, payload: new WeakRef(req.payload) };
  };
  const { ctx, dispose, payload } = open();
  ctx.signal; // links the parent
  await new Promise((r) => setTimeout(r, 0));
  gc();
  assert.notEqual(payload.deref(), undefined, "the live context must keep its request");
  dispose();
  await new Promise((r) => setTimeout(r, 0));
  gc();
  assert.equal(payload.deref(), undefined, "the disposed context still reaches its request");
  assert.equal(ctx.signal.aborted, false);
});

Deno.test("childContext() inherits the parent's identity, tightens its deadline and aborts with it", async (t) => {
  const parentController = new AbortController();
  const parent: Context = {
    requestId: "r-9",
    signal: parentController.signal,
    deadline: Date.now() + 60_000,
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    traceId: "0af7651916cd43dd8448eb211c80319c",
    route: "/v1/orders/:id",
    principal: { sub: "svc-orders", scopes: ["orders:write"] },
  };
  await t.step("fields and the earlier of the two deadlines", () => {
    const later = childContext(parent, { deadline: Date.now() + 3_600_000 });
    assert.equal(later.ctx.deadline, parent.deadline);
    const sooner = childContext(parent, { deadline: Date.now() + 1_000 });
    assert.ok(sooner.ctx.deadline! < parent.deadline!);
    for (const k of ["requestId", "traceparent", "traceId", "route", "principal"] as const) {
      assert.deepEqual(sooner.ctx[k], parent[k], k);
    }
    later.dispose();
    sooner.dispose();
  });
  await t.step("its deadline aborts its signal and calls onEnd with the TimeoutError", async () => {
    const ended = Promise.withResolvers<unknown>();
    const { ctx, dispose } = childContext(parent, { deadline: Date.now() + 10, onEnd: ended.resolve });
    const signal = ctx.signal;
    const reason = await within(ended.promise, 2_000, "onEnd after the 10 ms deadline");
    assert.equal((reason as DOMException).name, "TimeoutError");
    assert.equal(signal.aborted, true);
    assert.equal(signal.reason, reason);
    assert.equal(parent.signal.aborted, false, "the parent is not aborted by its child");
    dispose();
  });
  await t.step("the parent's abort reaches a child whose signal is in use", () => {
    const reasons: unknown[] = [];
    const { ctx, dispose } = childContext(parent, { deadline: Date.now() + 60_000, onEnd: (r) => reasons.push(r) });
    const signal = ctx.signal;
    parentController.abort(new Error("client went away"));
    assert.equal(signal.aborted, true);
    assert.equal((signal.reason as Error).message, "client went away");
    assert.deepEqual(reasons, [signal.reason]);
    dispose();
  });
  await t.step("without a parent: a fresh request id and only its own deadline", () => {
    const { ctx, dispose } = childContext(undefined, { deadline: Date.now() + 1_000 });
    assert.ok(isValidRequestId(ctx.requestId));
    assert.equal(ctx.signal.aborted, false);
    dispose();
  });
});

Deno.test("contextFromHeaders() takes the trace id from a valid incoming traceparent, so log lines carry it", () => {
  const cases: { traceparent: string | null; traceId: string | undefined }[] = [
    {
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      traceId: "0af7651916cd43dd8448eb211c80319c",
    },
    { traceparent: "00-00000000000000000000000000000000-b7ad6b7169203331-01", traceId: undefined },
    { traceparent: "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", traceId: undefined },
    { traceparent: "garbage", traceId: undefined },
    { traceparent: null, traceId: undefined },
  ];
  for (const c of cases) {
    const { ctx, dispose } = contextFromHeaders((n) => n === "traceparent" ? c.traceparent : null);
    assert.equal(ctx.traceId, c.traceId, String(c.traceparent));
    dispose();
  }
});

Deno.test("openContext() reads a parent given as an object (a Request) only when the context's signal is read, and aborts with it", async () => {
  const controller = new AbortController();
  let reads = 0;
  const source = {
    get signal() {
      reads++;
      return controller.signal;
    },
  };
  const ended: unknown[] = [];
  const ctx = openContext(new Headers({ "x-request-id": "r-9" }), {
    defaultBudgetMs: 60_000,
    signal: source,
    onEnd: (why) => ended.push(why),
  });
  try {
    assert.equal(ctx.requestId, "r-9");
    assert.equal(reads, 0);
    const signal = ctx.signal;
    assert.equal(reads, 1);
    controller.abort(new Error("client went away"));
    const reason = await within(aborted(signal), 1_000, "the context to abort with its parent");
    assert.equal((reason as Error).message, "client went away");
    assert.deepEqual(ended, [reason]);
  } finally {
    ctx.dispose();
    ctx.dispose();
  }
});

Deno.test("openContext() ends at its deadline without its signal being read, and not at all once disposed", async () => {
  const ended: unknown[] = [];
  const early = openContext(new Headers(), { defaultBudgetMs: 10, onEnd: (why) => ended.push(why) });
  const disposed = openContext(new Headers(), { defaultBudgetMs: 10, onEnd: () => ended.push("disposed one") });
  disposed.dispose();
  try {
    await within(new Promise((r) => setTimeout(r, 40)), 1_000, "the deadlines to pass");
    assert.equal(ended.length, 1);
    assert.equal((ended[0] as DOMException).name, "TimeoutError");
    assert.equal(early.signal.aborted, true);
    assert.equal(disposed.signal.aborted, false);
  } finally {
    early.dispose();
  }
});

Deno.test("runWithContext() passes its extra arguments to the function", () => {
  const ctx = ctxOf({ requestId: "r-args" });
  const out = runWithContext(ctx, (a: number, b: string) => `${currentContext()?.requestId} ${a} ${b}`, 1, "two");
  assert.equal(out, "r-args 1 two");
});
