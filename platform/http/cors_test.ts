import assert from "node:assert/strict";
import { cors, type CorsOptions } from "./cors.ts";
import { chain, type Handler } from "./handler.ts";

const SHOP = "https://shop.example";
const EVIL = "https://evil.example";

function run(options: CorsOptions, req: Request, handler?: Handler) {
  let calls = 0;
  const h = chain(cors(options))((r) => {
    calls++;
    return handler ? handler(r) : Promise.resolve(new Response("ok"));
  });
  return h(req).then((res) => ({ res, calls }));
}

function preflightReq(origin: string, extra: Record<string, string> = {}): Request {
  return new Request("http://api/v1/orders", {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", ...extra },
  });
}

Deno.test("cors() answers preflights itself: 204 with allow headers for allowed origins, 403 problem otherwise", async (t) => {
  const cases: {
    name: string;
    options: CorsOptions;
    req: Request;
    status: number;
    headers: Record<string, string | null>;
  }[] = [
    {
      name: "listed origin gets its own origin back, methods, max age and the requested headers",
      options: { origins: [SHOP] },
      req: preflightReq(SHOP, { "access-control-request-headers": "content-type, idempotency-key" }),
      status: 204,
      headers: {
        "access-control-allow-origin": SHOP,
        "access-control-allow-methods": "GET, HEAD, PUT, PATCH, POST, DELETE",
        "access-control-allow-headers": "content-type, idempotency-key",
        "access-control-max-age": "600",
        "access-control-allow-credentials": null,
        "vary": "Origin, Access-Control-Request-Headers",
      },
    },
    {
      name: "configured methods, headers, credentials and max age",
      options: {
        origins: [SHOP],
        methods: ["GET", "POST"],
        headers: ["authorization"],
        credentials: true,
        maxAgeSec: 60,
      },
      req: preflightReq(SHOP, { "access-control-request-headers": "x-anything" }),
      status: 204,
      headers: {
        "access-control-allow-origin": SHOP,
        "access-control-allow-methods": "GET, POST",
        "access-control-allow-headers": "authorization",
        "access-control-allow-credentials": "true",
        "access-control-max-age": "60",
        "vary": "Origin",
      },
    },
    {
      name: 'any origin with "*"',
      options: { origins: "*" },
      req: preflightReq(EVIL),
      status: 204,
      headers: { "access-control-allow-origin": "*", "access-control-allow-headers": null, "vary": null },
    },
    {
      name: "unlisted origin is refused",
      options: { origins: [SHOP] },
      req: preflightReq(EVIL),
      status: 403,
      headers: { "access-control-allow-origin": null, "content-type": "application/problem+json", "vary": "Origin" },
    },
    {
      name: "origin compared exactly (scheme and port count)",
      options: { origins: [SHOP] },
      req: preflightReq("http://shop.example"),
      status: 403,
      headers: { "access-control-allow-origin": null },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const { res, calls } = await run(c.options, c.req);
      assert.equal(res.status, c.status);
      assert.equal(calls, 0, "the handler does not see preflights");
      for (const [name, value] of Object.entries(c.headers)) assert.equal(res.headers.get(name), value, name);
      if (c.status === 403) {
        const problem = await res.json();
        assert.equal(problem.type, "https://trellis.dev/problems/cors-origin-denied");
      } else {
        assert.equal(res.body, null);
      }
    });
  }
});

Deno.test("cors() adds allow headers to simple and actual requests from allowed origins only", async (t) => {
  const cases: {
    name: string;
    options: CorsOptions;
    headers: Record<string, string>;
    method?: string;
    handler?: Handler;
    expect: Record<string, string | null>;
  }[] = [
    {
      name: "listed origin: exact origin and Vary",
      options: { origins: [SHOP], exposeHeaders: ["x-request-id", "retry-after"] },
      headers: { origin: SHOP },
      expect: {
        "access-control-allow-origin": SHOP,
        "access-control-expose-headers": "x-request-id, retry-after",
        "access-control-allow-credentials": null,
        "vary": "Origin",
      },
    },
    {
      name: "credentials: exact origin, never *",
      options: { origins: [SHOP], credentials: true },
      headers: { origin: SHOP },
      expect: { "access-control-allow-origin": SHOP, "access-control-allow-credentials": "true", "vary": "Origin" },
    },
    {
      name: "unlisted origin: no allow headers, still Vary",
      options: { origins: [SHOP] },
      headers: { origin: EVIL },
      expect: { "access-control-allow-origin": null, "vary": "Origin" },
    },
    {
      name: "no Origin (same origin or not a browser): Vary only",
      options: { origins: [SHOP] },
      headers: {},
      expect: { "access-control-allow-origin": null, "vary": "Origin" },
    },
    {
      name: '"*" answers * without Vary',
      options: { origins: "*" },
      headers: { origin: EVIL },
      expect: { "access-control-allow-origin": "*", "vary": null },
    },
    {
      name: "an OPTIONS without Access-Control-Request-Method is not a preflight",
      options: { origins: [SHOP] },
      method: "OPTIONS",
      headers: { origin: SHOP },
      expect: { "access-control-allow-origin": SHOP, "access-control-allow-methods": null },
    },
    {
      name: "existing Vary is extended, not replaced",
      options: { origins: [SHOP] },
      headers: { origin: SHOP },
      handler: () => Promise.resolve(new Response("ok", { headers: { vary: "Accept-Encoding" } })),
      expect: { "vary": "Accept-Encoding, Origin" },
    },
    {
      name: "headers the handler set win",
      options: { origins: [SHOP], exposeHeaders: ["x-request-id"] },
      headers: { origin: SHOP },
      handler: () =>
        Promise.resolve(
          new Response("ok", {
            headers: { "access-control-allow-origin": "https://other.example", "vary": "origin" },
          }),
        ),
      expect: {
        "access-control-allow-origin": "https://other.example",
        "access-control-expose-headers": null,
        "vary": "origin",
      },
    },
    {
      name: "immutable response headers (a redirect) are copied",
      options: { origins: [SHOP] },
      headers: { origin: SHOP },
      handler: () => Promise.resolve(Response.redirect("http://api/elsewhere", 303)),
      expect: { "access-control-allow-origin": SHOP, "location": "http://api/elsewhere", "vary": "Origin" },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const req = new Request("http://api/v1/orders", { method: c.method ?? "GET", headers: c.headers });
      const { res, calls } = await run(c.options, req, c.handler);
      await res.body?.cancel();
      assert.equal(calls, 1);
      for (const [name, value] of Object.entries(c.expect)) assert.equal(res.headers.get(name), value, name);
    });
  }
});

Deno.test("cors() throws for credentials with any origin, a bad origins value and a bad maxAgeSec", () => {
  assert.throws(() => cors({ origins: "*", credentials: true }), {
    name: "TypeError",
    message: 'Cannot allow credentials for origins as "*": current value is "*" (list the trusted origins instead)',
  });
  assert.throws(() => cors({ origins: "https://shop.example" as unknown as "*" }), {
    name: "TypeError",
    message: 'Cannot use origins as a list of origins or "*": current value is "https://shop.example"',
  });
  for (const maxAgeSec of [-1, 0.5, NaN]) {
    assert.throws(() => cors({ origins: "*", maxAgeSec }), {
      name: "RangeError",
      message: `Cannot cache preflights for maxAgeSec: current value is ${maxAgeSec}`,
    });
  }
});
