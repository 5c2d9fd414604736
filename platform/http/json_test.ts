import assert from "node:assert/strict";
import { json, readJson } from "./json.ts";
import { HttpError } from "./problem.ts";

function post(
  body: string | Uint8Array<ArrayBuffer>,
  headers: Record<string, string> = { "content-type": "application/json" },
) {
  // Bytes, because a string body would bring its own text/plain content type.
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  return new Request("http://svc/v1/orders", { method: "POST", body: bytes, headers });
}

function stream(chunks: Uint8Array[]): { body: ReadableStream<Uint8Array>; cancelled: () => boolean } {
  let cancelled = false;
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < chunks.length) c.enqueue(chunks[i++]);
      else c.close();
    },
    cancel() {
      cancelled = true;
    },
  });
  return { body, cancelled: () => cancelled };
}

async function rejection(p: Promise<unknown>): Promise<HttpError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof HttpError, `expected HttpError, got ${err}`);
    return err;
  }
  assert.fail("expected readJson() to throw");
}

Deno.test("readJson() parses a JSON body for application/json and any application/*+json type", async () => {
  const types = [
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON",
    "application/merge-patch+json",
    "application/vnd.trellis.order.v1+json",
    "application/problem+json",
  ];
  for (const type of types) {
    assert.deepEqual(await readJson(post('{"a":[1,"x"]}', { "content-type": type })), { a: [1, "x"] }, type);
  }
});

Deno.test("readJson() rejects a missing or wrong content type with 415 naming what it got", async () => {
  const cases: { headers: Record<string, string>; got: string }[] = [
    { headers: {}, got: '"(none)"' },
    { headers: { "content-type": "text/plain" }, got: '"text/plain"' },
    { headers: { "content-type": "application/x-www-form-urlencoded" }, got: '"application/x-www-form-urlencoded"' },
    { headers: { "content-type": "application/jsonp" }, got: '"application/jsonp"' },
    { headers: { "content-type": "text/json+xml" }, got: '"text/json+xml"' },
  ];
  for (const c of cases) {
    const err = await rejection(readJson(post("{}", c.headers)));
    assert.equal(err.status, 415, c.got);
    assert.equal(err.type, "unsupported-media-type");
    assert.equal(err.detail, `expected content-type application/json, got ${c.got}`);
  }
});

Deno.test("readJson() rejects a declared content-length over maxBytes with 413 before reading", async () => {
  const { body, cancelled } = stream([new TextEncoder().encode("{}")]);
  const req = new Request("http://svc/", {
    method: "POST",
    body,
    headers: { "content-type": "application/json", "content-length": "11" },
  });
  const err = await rejection(readJson(req, { maxBytes: 10 }));
  assert.equal(err.status, 413);
  assert.equal(err.type, "payload-too-large");
  assert.equal(err.detail, "body exceeds 10 bytes");
  assert.equal(cancelled(), false, "the body was never touched");
  await req.body?.cancel();
});

Deno.test("readJson() rejects a streamed body that grows past maxBytes with 413 and cancels the stream", async () => {
  const chunk = new TextEncoder().encode('"' + "x".repeat(8));
  const { body, cancelled } = stream([chunk, chunk, chunk]);
  const req = new Request("http://svc/", { method: "POST", body, headers: { "content-type": "application/json" } });
  const err = await rejection(readJson(req, { maxBytes: 20 }));
  assert.equal(err.status, 413);
  assert.equal(cancelled(), true);
});

Deno.test("readJson() accepts a body of exactly maxBytes assembled from several chunks", async () => {
  const enc = new TextEncoder();
  const { body } = stream([enc.encode('{"a":'), enc.encode('"bcd"'), enc.encode("}")]);
  const req = new Request("http://svc/", { method: "POST", body, headers: { "content-type": "application/json" } });
  assert.deepEqual(await readJson(req, { maxBytes: 11 }), { a: "bcd" });
});

Deno.test("readJson() rejects malformed JSON with 400 saying where", async () => {
  const cases = ['{"a":1,}', '{"a":', "", "nope"];
  for (const body of cases) {
    const err = await rejection(readJson(post(body)));
    assert.equal(err.status, 400, body);
    assert.equal(err.type, "malformed-json");
    assert.match(err.detail!, /^body is not valid JSON: /);
  }
  const err = await rejection(readJson(post('{"a":1,}')));
  assert.match(err.detail!, /position 7|line 1 column 8/, "the detail says where parsing failed");
});

Deno.test("readJson() rejects a body that is not valid UTF-8 with 400", async () => {
  const bytes = new Uint8Array([0x22, 0xc3, 0x28, 0x22]);
  const err = await rejection(readJson(post(bytes)));
  assert.equal(err.status, 400);
  assert.equal(err.type, "malformed-json");
  assert.equal(err.detail, "body is not valid UTF-8");
});

Deno.test("json() answers a JSON body with the status and extra headers given", async () => {
  const res = json({ ok: true }, 201, { location: "/v1/orders/o-1", "content-type": "text/plain" });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("location"), "/v1/orders/o-1");
  assert.deepEqual(await res.json(), { ok: true });
  assert.equal(json(null).status, 200);
});
