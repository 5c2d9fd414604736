import assert from "node:assert/strict";
import { createLogger } from "../log/mod.ts";
import { bodyLimit } from "./body_limit.ts";
import { chain, type Handler } from "./handler.ts";
import { recovery } from "./middleware.ts";

const log = createLogger("test", { write: () => {} });

function source(chunkSizes: number[]) {
  let pulls = 0;
  let cancelled: unknown = undefined;
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      pulls++;
      if (i < chunkSizes.length) c.enqueue(new Uint8Array(chunkSizes[i++]).fill(120));
      else c.close();
    },
    cancel(reason) {
      cancelled = reason ?? "cancelled";
    },
  }, { highWaterMark: 0 });
  return { body, pulls: () => pulls, cancelled: () => cancelled };
}

function post(body: BodyInit, headers: Record<string, string> = {}): Request {
  return new Request("http://svc/upload", { method: "POST", body, headers, duplex: "half" } as RequestInit);
}

const echoLength: Handler = async (req) => new Response(String((await req.arrayBuffer()).byteLength));

Deno.test("bodyLimit() lets bodies up to maxBytes through and answers 413 problem+json above it", async (t) => {
  const cases: { name: string; req: () => Request; status: number; body?: string; handlerRan: boolean }[] = [
    { name: "no body", req: () => new Request("http://svc/"), status: 200, body: "0", handlerRan: true },
    { name: "small fixed body", req: () => post(new Uint8Array(10)), status: 200, body: "10", handlerRan: true },
    { name: "exactly maxBytes", req: () => post(new Uint8Array(100)), status: 200, body: "100", handlerRan: true },
    { name: "fixed body over maxBytes", req: () => post(new Uint8Array(101)), status: 413, handlerRan: true },
    {
      name: "Content-Length over maxBytes, answered before the handler",
      req: () => post(source([60, 60]).body, { "content-length": "101" }),
      status: 413,
      handlerRan: false,
    },
    {
      name: "streamed body under maxBytes",
      req: () => post(source([40, 40, 20]).body),
      status: 200,
      body: "100",
      handlerRan: true,
    },
    { name: "streamed body over maxBytes", req: () => post(source([60, 60]).body), status: 413, handlerRan: true },
    {
      name: "Content-Length that is not a byte count, so the body is counted",
      req: () => post(source([60, 60]).body, { "content-length": "abc" }),
      status: 413,
      handlerRan: true,
    },
    {
      name: "Content-Length within maxBytes, trusted",
      req: () => post(new Uint8Array(100), { "content-length": "100" }),
      status: 200,
      body: "100",
      handlerRan: true,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      let ran = false;
      const h = chain(recovery(log), bodyLimit({ maxBytes: 100 }))((req) => {
        ran = true;
        return echoLength(req);
      });
      const res = await h(c.req());
      assert.equal(res.status, c.status);
      assert.equal(ran, c.handlerRan);
      if (c.status === 413) {
        assert.equal(res.headers.get("content-type"), "application/problem+json");
        const problem = await res.json();
        assert.equal(problem.type, "https://trellis.dev/problems/payload-too-large");
        assert.equal(problem.detail, "body exceeds 100 bytes");
      } else {
        assert.equal(await res.text(), c.body);
      }
    });
  }
});

Deno.test("bodyLimit() stops reading the client's body at the chunk that crosses maxBytes and cancels it", async () => {
  const src = source([60, 60, 60, 60]);
  const h = chain(recovery(log), bodyLimit({ maxBytes: 100 }))(echoLength);
  const res = await h(post(src.body));
  await res.body?.cancel();
  assert.equal(res.status, 413);
  assert.equal(src.pulls(), 2);
  assert.ok(src.cancelled(), "the source stream is cancelled");
});

Deno.test("bodyLimit() reads nothing from a body the handler never reads", async () => {
  const src = source([500]);
  const h = chain(bodyLimit({ maxBytes: 100 }))(() => Promise.resolve(new Response("ignored")));
  const res = await h(post(src.body));
  assert.equal(await res.text(), "ignored");
  assert.equal(src.pulls(), 0);
});

Deno.test("bodyLimit() keeps the request's method, url and headers", async () => {
  let seen: Request | undefined;
  const h = chain(bodyLimit({ maxBytes: 100 }))((req) => {
    seen = req;
    return echoLength(req);
  });
  const res = await h(
    new Request("http://svc/a?b=1", { method: "PUT", body: "hi", headers: { "content-type": "text/plain" } }),
  );
  assert.equal(await res.text(), "2");
  assert.equal(seen?.method, "PUT");
  assert.equal(seen?.url, "http://svc/a?b=1");
  assert.equal(seen?.headers.get("content-type"), "text/plain");
});

Deno.test("bodyLimit() throws RangeError for a maxBytes that is not a non-negative integer", () => {
  for (const maxBytes of [-1, 1.5, NaN, Infinity]) {
    assert.throws(() => bodyLimit({ maxBytes }), {
      name: "RangeError",
      message: `Cannot limit request bodies to maxBytes: current value is ${maxBytes}`,
    });
  }
});
