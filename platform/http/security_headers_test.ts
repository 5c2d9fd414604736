import assert from "node:assert/strict";
import { chain, type Handler } from "./handler.ts";
import { securityHeaders, type SecurityHeadersOptions } from "./security_headers.ts";

const API_CSP = "default-src 'none'; frame-ancestors 'none'";

Deno.test("securityHeaders() sets the configured headers and keeps the ones the handler set", async (t) => {
  const cases: {
    name: string;
    options?: SecurityHeadersOptions;
    handler?: Handler;
    expect: Record<string, string | null>;
  }[] = [
    {
      name: "defaults suit a JSON API and leave HSTS out",
      expect: {
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
        "content-security-policy": API_CSP,
        "strict-transport-security": null,
      },
    },
    {
      name: "HSTS only when configured",
      options: { strictTransportSecurity: { maxAgeSec: 31_536_000, includeSubDomains: true, preload: true } },
      expect: { "strict-transport-security": "max-age=31536000; includeSubDomains; preload" },
    },
    {
      name: "HSTS without the optional directives",
      options: { strictTransportSecurity: { maxAgeSec: 600 } },
      expect: { "strict-transport-security": "max-age=600" },
    },
    {
      name: "false leaves a header out",
      options: { contentSecurityPolicy: false, referrerPolicy: false, frameOptions: false, noSniff: false },
      expect: {
        "x-content-type-options": null,
        "referrer-policy": null,
        "x-frame-options": null,
        "content-security-policy": null,
      },
    },
    {
      name: "custom values",
      options: { contentSecurityPolicy: "default-src 'self'", frameOptions: "SAMEORIGIN", referrerPolicy: "origin" },
      expect: {
        "content-security-policy": "default-src 'self'",
        "x-frame-options": "SAMEORIGIN",
        "referrer-policy": "origin",
      },
    },
    {
      name: "the handler's own headers win",
      handler: () =>
        Promise.resolve(
          new Response("<p>docs</p>", {
            headers: { "content-security-policy": "default-src 'self'", "x-frame-options": "SAMEORIGIN" },
          }),
        ),
      expect: {
        "content-security-policy": "default-src 'self'",
        "x-frame-options": "SAMEORIGIN",
        "x-content-type-options": "nosniff",
      },
    },
    {
      name: "a response with immutable headers is copied",
      handler: () => Promise.resolve(Response.redirect("http://api/elsewhere", 302)),
      expect: { "location": "http://api/elsewhere", "x-frame-options": "DENY", "content-security-policy": API_CSP },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const h = chain(securityHeaders(c.options))(c.handler ?? (() => Promise.resolve(Response.json({ ok: true }))));
      const res = await h(new Request("http://api/"));
      await res.body?.cancel();
      for (const [name, value] of Object.entries(c.expect)) assert.equal(res.headers.get(name), value, name);
    });
  }
});

Deno.test("securityHeaders() keeps the handler's status and body", async () => {
  const h = chain(securityHeaders())(() => Promise.resolve(new Response("created", { status: 201 })));
  const res = await h(new Request("http://api/"));
  assert.equal(res.status, 201);
  assert.equal(await res.text(), "created");
});

Deno.test("securityHeaders() throws RangeError for an HSTS maxAgeSec that is not a non-negative integer", () => {
  for (const maxAgeSec of [-1, 1.5, NaN]) {
    assert.throws(() => securityHeaders({ strictTransportSecurity: { maxAgeSec } }), {
      name: "RangeError",
      message:
        `Cannot send Strict-Transport-Security with maxAgeSec as a non-negative integer: current value is ${maxAgeSec}`,
    });
  }
});
