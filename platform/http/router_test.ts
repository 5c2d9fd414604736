import assert from "node:assert/strict";
import { type Context, currentContext, runWithContext } from "../context/mod.ts";
import { Router } from "./router.ts";

function echo(name: string) {
  return (req: Request, params: Record<string, string>) =>
    Promise.resolve(Response.json({ name, method: req.method, params, route: currentContext()?.route ?? null }));
}

function router(): Router {
  return new Router()
    .get("/v1/orders", echo("list"))
    .post("/v1/orders", echo("create"))
    .get("/v1/orders/new", echo("new-form"))
    .get("/v1/orders/:id", echo("get"))
    .delete("/v1/orders/:id", echo("delete"))
    .put("/v1/orders/:id/items/:sku", echo("put-item"))
    .on("patch", "/v1/files/*", echo("files"));
}

async function call(method: string, path: string) {
  const res = await router().handler(new Request(`http://svc${path}`, { method }));
  return { res, body: await res.json() };
}

Deno.test("Router dispatches by method and path to static and pattern routes with their params", async () => {
  const cases: { method: string; path: string; name: string; params: Record<string, string> }[] = [
    { method: "GET", path: "/v1/orders", name: "list", params: {} },
    { method: "POST", path: "/v1/orders", name: "create", params: {} },
    { method: "GET", path: "/v1/orders/o-1", name: "get", params: { id: "o-1" } },
    { method: "DELETE", path: "/v1/orders/o-1", name: "delete", params: { id: "o-1" } },
    { method: "PUT", path: "/v1/orders/o-1/items/sku-9", name: "put-item", params: { id: "o-1", sku: "sku-9" } },
    { method: "PATCH", path: "/v1/files/a/b.txt", name: "files", params: { "0": "a/b.txt" } },
    { method: "GET", path: "/v1/orders?limit=5", name: "list", params: {} },
  ];
  for (const c of cases) {
    const { res, body } = await call(c.method, c.path);
    assert.equal(res.status, 200, `${c.method} ${c.path}`);
    assert.equal(body.name, c.name, `${c.method} ${c.path}`);
    assert.deepEqual(body.params, c.params, `${c.method} ${c.path}`);
  }
});

Deno.test("Router prefers a static route over a pattern that also matches, whatever the registration order", async () => {
  const r = new Router().get("/v1/orders/:id", echo("get")).get("/v1/orders/new", echo("new-form"));
  const body = await (await r.handler(new Request("http://svc/v1/orders/new"))).json();
  assert.equal(body.name, "new-form");
  assert.equal((await call("GET", "/v1/orders/new")).body.name, "new-form");
});

Deno.test("Router percent-decodes params and leaves a malformed escape as it came", async () => {
  const cases: { path: string; id: string }[] = [
    { path: "/v1/orders/a%20b", id: "a b" },
    { path: "/v1/orders/caf%C3%A9", id: "café" },
    { path: "/v1/orders/a%2Fb", id: "a/b" },
    { path: "/v1/orders/100%25", id: "100%" },
    { path: "/v1/orders/bad%E0%A4%A", id: "bad%E0%A4%A" },
  ];
  for (const c of cases) assert.equal((await call("GET", c.path)).body.params.id, c.id, c.path);
});

Deno.test("Router answers an unknown path with a 404 problem", async () => {
  const { res, body } = await call("GET", "/v2/nothing");
  assert.equal(res.status, 404);
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  assert.equal(body.type, "https://trellis.dev/problems/not-found");
  assert.equal(body.detail, "no route for /v2/nothing");
});

Deno.test("Router answers a known path with the wrong method with 405 and an Allow header", async () => {
  const cases: { method: string; path: string; allow: string }[] = [
    { method: "DELETE", path: "/v1/orders", allow: "GET, HEAD, POST" },
    { method: "POST", path: "/v1/orders/o-1", allow: "DELETE, GET, HEAD" },
    { method: "GET", path: "/v1/orders/o-1/items/s", allow: "PUT" },
    { method: "GET", path: "/v1/files/x", allow: "PATCH" },
    { method: "OPTIONS", path: "/v1/orders/new", allow: "DELETE, GET, HEAD" },
  ];
  for (const c of cases) {
    const { res, body } = await call(c.method, c.path);
    assert.equal(res.status, 405, `${c.method} ${c.path}`);
    assert.equal(res.headers.get("allow"), c.allow, `${c.method} ${c.path}`);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    assert.equal(body.type, "https://trellis.dev/problems/method-not-allowed");
    assert.equal(body.detail, `${c.method} is not allowed on ${c.path}`);
  }
});

Deno.test("Router serves HEAD with the GET route", async () => {
  const res = await router().handler(new Request("http://svc/v1/orders/o-1", { method: "HEAD" }));
  assert.equal(res.status, 200);
  assert.equal((await res.json()).name, "get");
});

Deno.test("Router stores the matched route template on the current context", async () => {
  const cases: { path: string; route: string | undefined }[] = [
    { path: "/v1/orders", route: "/v1/orders" },
    { path: "/v1/orders/o-1/items/s", route: undefined },
    { path: "/v1/orders/o-1", route: "/v1/orders/:id" },
    { path: "/nowhere", route: undefined },
  ];
  for (const c of cases) {
    const ctx: Context = { requestId: "r", signal: new AbortController().signal };
    const res = await runWithContext(ctx, () => router().handler(new Request(`http://svc${c.path}`)));
    await res.body?.cancel();
    assert.equal(ctx.route, c.route, c.path);
  }
  const body = await runWithContext(
    { requestId: "r", signal: new AbortController().signal },
    async () => (await router().handler(new Request("http://svc/v1/orders/o-9"))).json(),
  );
  assert.equal(body.route, "/v1/orders/:id", "the handler sees the template too");
});

Deno.test("Router works outside any context", async () => {
  const { res, body } = await call("GET", "/v1/orders/o-1");
  assert.equal(res.status, 200);
  assert.equal(body.route, null);
});
