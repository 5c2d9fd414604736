import assert from "node:assert/strict";
import { type Context, contextHeaders, currentContext } from "../context/mod.ts";
import { chain, type Handler } from "./handler.ts";
import { requestContext } from "./middleware.ts";
import { parseTraceparent, type TraceContext, tracing } from "./tracing.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";
const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;

Deno.test("parseTraceparent() accepts valid headers and rejects invalid ones", async (t) => {
  const cases: [string, string | undefined, ReturnType<typeof parseTraceparent>][] = [
    ["sampled", `00-${TRACE}-${PARENT}-01`, { traceId: TRACE, parentSpanId: PARENT, sampled: true }],
    ["not sampled", `00-${TRACE}-${PARENT}-00`, { traceId: TRACE, parentSpanId: PARENT, sampled: false }],
    ["other flag bits", `00-${TRACE}-${PARENT}-03`, { traceId: TRACE, parentSpanId: PARENT, sampled: true }],
    ["later version with more fields", `01-${TRACE}-${PARENT}-01-what-ever`, {
      traceId: TRACE,
      parentSpanId: PARENT,
      sampled: true,
    }],
    ["missing", undefined, undefined],
    ["empty", "", undefined],
    ["version ff", `ff-${TRACE}-${PARENT}-01`, undefined],
    ["version 00 with extra fields", `00-${TRACE}-${PARENT}-01-extra`, undefined],
    ["upper case", `00-${TRACE.toUpperCase()}-${PARENT}-01`, undefined],
    ["all-zero trace id", `00-${"0".repeat(32)}-${PARENT}-01`, undefined],
    ["all-zero parent id", `00-${TRACE}-${"0".repeat(16)}-01`, undefined],
    ["short trace id", `00-${TRACE.slice(1)}-${PARENT}-01`, undefined],
    ["garbage", "x".repeat(55), undefined],
  ];
  for (const [name, header, expected] of cases) {
    await t.step(name, () => assert.deepEqual(parseTraceparent(header), expected));
  }
});

Deno.test("tracing() keeps a valid incoming trace id, else starts a trace, with a new span id either way", async (t) => {
  const cases: { name: string; traceparent?: string; keep: boolean; sampled: boolean }[] = [
    { name: "valid, sampled", traceparent: `00-${TRACE}-${PARENT}-01`, keep: true, sampled: true },
    { name: "valid, not sampled", traceparent: `00-${TRACE}-${PARENT}-00`, keep: true, sampled: false },
    { name: "none", keep: false, sampled: true },
    { name: "invalid", traceparent: `00-${TRACE}-${"0".repeat(16)}-01`, keep: false, sampled: true },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      let ctx: Context | undefined;
      let downstream: Record<string, string> = {};
      const h = chain(requestContext(), tracing())(() => {
        ctx = currentContext();
        downstream = contextHeaders();
        return Promise.resolve(new Response("ok"));
      });
      const headers: Record<string, string> = c.traceparent ? { traceparent: c.traceparent } : {};
      const res = await h(new Request("http://api/", { headers }));
      await res.body?.cancel();
      const echoed = parseTraceparent(res.headers.get("traceparent"));
      assert.ok(echoed, "the response carries a valid traceparent");
      if (c.keep) assert.equal(echoed.traceId, TRACE);
      else assert.match(echoed.traceId, HEX32);
      assert.notEqual(echoed.parentSpanId, PARENT, "this hop has its own span");
      assert.match(echoed.parentSpanId, HEX16);
      assert.equal(echoed.sampled, c.sampled);
      assert.equal(ctx?.traceId, echoed.traceId);
      assert.equal(ctx?.traceparent, res.headers.get("traceparent"));
      assert.equal(downstream.traceparent, res.headers.get("traceparent"), "downstream calls name this span");
    });
  }
});

Deno.test("tracing() gives every request a different span id and new traces different trace ids", async () => {
  const h = chain(tracing())(() => Promise.resolve(new Response(null, { status: 204 })));
  const seen = new Set<string>();
  const traces = new Set<string>();
  // More than one 4 KiB pool of random bytes, so a refill happens.
  for (let i = 0; i < 300; i++) {
    const p = parseTraceparent((await h(new Request("http://api/"))).headers.get("traceparent"))!;
    seen.add(p.parentSpanId);
    traces.add(p.traceId);
  }
  assert.equal(seen.size, 300);
  assert.equal(traces.size, 300);
});

Deno.test("tracing() runs onStart before and onEnd after the handler, with the same trace", async (t) => {
  const cases: { name: string; handler: Handler; status?: number; throws: boolean }[] = [
    {
      name: "handler answers",
      handler: () => Promise.resolve(new Response("ok", { status: 201 })),
      status: 201,
      throws: false,
    },
    { name: "handler throws", handler: () => Promise.reject(new Error("boom")), throws: true },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const events: string[] = [];
      let started: TraceContext | undefined;
      let ended: { res: Response | undefined; ms: number; trace: TraceContext } | undefined;
      const h = chain(tracing({
        onStart: (req, trace) => {
          events.push(`start ${req.method}`);
          started = trace;
        },
        onEnd: (_req, res, ms, trace) => {
          events.push("end");
          ended = { res, ms, trace };
        },
      }))((req) => {
        events.push("handler");
        return c.handler(req);
      });
      const req = new Request("http://api/", { method: "POST", headers: { traceparent: `00-${TRACE}-${PARENT}-01` } });
      if (c.throws) await assert.rejects(h(req), { message: "boom" });
      else await (await h(req)).body?.cancel();
      assert.deepEqual(events, ["start POST", "handler", "end"]);
      assert.equal(started?.traceId, TRACE);
      assert.equal(started?.parentSpanId, PARENT);
      assert.equal(ended?.trace, started);
      assert.equal(ended?.res?.status, c.status);
      assert.ok(ended!.ms >= 0);
    });
  }
});

Deno.test("tracing() leaves the response alone with responseHeader: false and copies immutable ones otherwise", async () => {
  const redirect: Handler = () => Promise.resolve(Response.redirect("http://api/elsewhere", 307));
  const off = await chain(tracing({ responseHeader: false }))(redirect)(new Request("http://api/"));
  assert.equal(off.headers.get("traceparent"), null);
  const on = await chain(tracing())(redirect)(new Request("http://api/"));
  assert.equal(on.status, 307);
  assert.equal(on.headers.get("location"), "http://api/elsewhere");
  assert.ok(parseTraceparent(on.headers.get("traceparent")));
});
