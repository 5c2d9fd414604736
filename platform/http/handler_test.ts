import assert from "node:assert/strict";
import { chain, type Handler, type Middleware } from "./handler.ts";

function tag(name: string, trace: string[]): Middleware {
  return (next) =>
    async function tagged(req) {
      trace.push(`${name} in`);
      const res = await next(req);
      trace.push(`${name} out`);
      return res;
    };
}

Deno.test("chain() runs middleware outermost first, then the handler, and unwinds in reverse", async () => {
  const trace: string[] = [];
  const handler: Handler = () => {
    trace.push("handler");
    return Promise.resolve(new Response("ok"));
  };
  const res = await chain(tag("a", trace), tag("b", trace), tag("c", trace))(handler)(new Request("http://x/"));
  assert.equal(await res.text(), "ok");
  assert.deepEqual(trace, ["a in", "b in", "c in", "handler", "c out", "b out", "a out"]);
});

Deno.test("chain() with no middleware returns the handler itself", () => {
  const handler: Handler = () => Promise.resolve(new Response("ok"));
  assert.equal(chain()(handler), handler);
});

Deno.test("chain() lets a middleware call next more than once", async () => {
  let calls = 0;
  const twice: Middleware = (next) =>
    async function twice(req) {
      await next(req);
      return next(req);
    };
  const res = await chain(twice)(() => Promise.resolve(new Response(String(++calls))))(new Request("http://x/"));
  assert.equal(await res.text(), "2");
});
