import assert from "node:assert/strict";
import { chain, requestContext } from "../http/mod.ts";
import { currentContext } from "../context/mod.ts";
import { apiKeyAgent, bearerAgent } from "./agents.ts";
import { AuthError } from "./auth_error.ts";
import { authenticate } from "./middleware.ts";

const KEY = "partner-key-0123456789abcdef";
async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

const fakeVerifier = {
  verify: (token: string) =>
    token === "good-jwt"
      ? Promise.resolve({ sub: "alice", scopes: ["orders:read"] })
      : Promise.reject(new AuthError("invalid_token", "bad signature")),
};

async function handlerWith() {
  const hash = await sha256(KEY);
  const agents = [
    bearerAgent(fakeVerifier),
    apiKeyAgent({ lookup: (h) => Promise.resolve(h === hash ? { sub: "partner-1", scopes: [] } : undefined) }),
  ];
  return chain(requestContext(), authenticate(agents))(() =>
    Promise.resolve(Response.json(currentContext()?.principal))
  );
}

Deno.test("authenticate() with agents lets the first agent that finds credentials decide", async () => {
  const h = await handlerWith();
  const byJwt = await h(new Request("http://x/", { headers: { authorization: "Bearer good-jwt" } }));
  assert.equal((await byJwt.json()).sub, "alice");
  const byKey = await h(new Request("http://x/", { headers: { "x-api-key": KEY } }));
  assert.equal((await byKey.json()).sub, "partner-1");
});

Deno.test("authenticate() with agents answers 401 naming the failing scheme, or every scheme when none applies", async () => {
  const h = await handlerWith();
  const table: [Record<string, string>, RegExp][] = [
    [{ authorization: "Bearer forged" }, /^Bearer realm="trellis", error="invalid_token"/],
    [{ "x-api-key": "unknown-key-0123456789" }, /^ApiKey realm="trellis", error="invalid_token"/],
    [{ "x-api-key": "short" }, /^ApiKey realm="trellis", error="invalid_token"/],
    [{}, /^Bearer realm="trellis", ApiKey realm="trellis"$/],
    [{ authorization: "Basic dXNlcjpwdw==" }, /^Bearer realm="trellis", ApiKey realm="trellis"$/],
  ];
  for (const [headers, challenge] of table) {
    const res = await h(new Request("http://x/", { headers }));
    assert.equal(res.status, 401, JSON.stringify(headers));
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    assert.match(res.headers.get("www-authenticate") ?? "", challenge, JSON.stringify(headers));
    await res.body?.cancel();
  }
});

Deno.test("authenticate() refuses an empty agent list", () => {
  assert.throws(() => authenticate([]), TypeError);
});
