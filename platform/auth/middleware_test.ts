import assert from "node:assert/strict";
import { currentContext, type Principal } from "../context/mod.ts";
import { chain, type Handler, requestContext } from "../http/mod.ts";
import { AuthError } from "./auth_error.ts";
import { authenticate, requireScopes } from "./middleware.ts";
import type { Verifier } from "./verifier.ts";

const GOOD: Principal = { sub: "u-1", scopes: ["orders:read"], token: "good" };

const verifier: Pick<Verifier, "verify"> = {
  verify(token) {
    if (token === "good") return Promise.resolve(GOOD);
    if (token === "outage") {
      return Promise.reject(new AuthError("temporarily_unavailable", "signing keys are unavailable"));
    }
    return Promise.reject(new AuthError("invalid_token", "token expired"));
  },
};

const whoami: Handler = () => Promise.resolve(Response.json({ sub: currentContext()?.principal?.sub ?? null }));

function call(handler: Handler, authorization?: string): Promise<Response> {
  const headers = new Headers({ "x-request-id": "req-1" });
  if (authorization !== undefined) headers.set("authorization", authorization);
  return handler(new Request("http://svc/v1/orders", { headers }));
}

Deno.test("authenticate() sets the verified principal on the request context", async () => {
  const handler = chain(requestContext(), authenticate(verifier))(whoami);
  const res = await call(handler, "Bearer good");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { sub: "u-1" });
});

Deno.test("authenticate() answers a request without a bearer token with 401 and a bare challenge", async () => {
  const handler = chain(requestContext(), authenticate(verifier))(whoami);
  for (const authorization of [undefined, "", "Basic dTpw", "Bearertoken"]) {
    const res = await call(handler, authorization);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get("www-authenticate"), 'Bearer realm="trellis"');
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    const body = await res.json();
    assert.equal(body.status, 401);
    assert.equal(body.type, "https://trellis.dev/problems/unauthorized");
    assert.equal(body.requestId, "req-1");
  }
});

Deno.test("authenticate() answers an invalid token with 401 invalid_token and its description", async () => {
  const handler = chain(requestContext(), authenticate(verifier, { realm: "orders" }))(whoami);
  for (const authorization of ["Bearer expired", "bearer expired", "Bearer  expired "]) {
    const res = await call(handler, authorization);
    assert.equal(res.status, 401);
    assert.match(
      res.headers.get("www-authenticate")!,
      /^Bearer realm="orders", error="invalid_token", error_description="[^"]+"$/,
    );
    assert.equal((await res.json()).type, "https://trellis.dev/problems/unauthorized");
  }
});

Deno.test("authenticate() answers an empty or malformed Bearer credential with 401 invalid_token", async () => {
  const seen: string[] = [];
  const spy: Pick<Verifier, "verify"> = { verify: (token) => (seen.push(token), verifier.verify(token)) };
  const handler = chain(requestContext(), authenticate(spy))(whoami);
  for (
    const [authorization, description] of [
      ["Bearer ", "token is empty"],
      ["Bearer", "token is empty"],
      ["bearer    ", "token is empty"],
      ["Bearer good trailing", "token is malformed"],
      ["Bearer a,b", "token is malformed"],
      ['Bearer "good"', "token is malformed"],
    ]
  ) {
    const res = await call(handler, authorization);
    assert.equal(res.status, 401, authorization);
    assert.equal(
      res.headers.get("www-authenticate"),
      `Bearer realm="trellis", error="invalid_token", error_description="${description}"`,
      authorization,
    );
    assert.equal((await res.json()).type, "https://trellis.dev/problems/unauthorized");
  }
  assert.deepEqual(seen, [], "the verifier never sees a credential that cannot be a token");
});

Deno.test("authenticate() answers 503 when keys are unavailable, not blaming the token", async () => {
  const res = await call(chain(requestContext(), authenticate(verifier))(whoami), "Bearer outage");
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("www-authenticate"), null);
  assert.equal((await res.json()).type, "https://trellis.dev/problems/auth-unavailable");
});

Deno.test("authenticate() throws when no request context is open, since that is a wiring mistake", async () => {
  await assert.rejects(call(authenticate(verifier)(whoami), "Bearer good"), /outside a request context/);
});

Deno.test("requireScopes() lets a principal holding every scope through", async () => {
  const handler = chain(requestContext(), authenticate(verifier), requireScopes("orders:read"))(whoami);
  assert.equal((await call(handler, "Bearer good")).status, 200);
});

Deno.test("requireScopes() answers 403 insufficient_scope naming the missing scope", async () => {
  const handler = chain(requestContext(), authenticate(verifier), requireScopes("orders:read", "orders:write"))(
    whoami,
  );
  const res = await call(handler, "Bearer good");
  assert.equal(res.status, 403);
  assert.equal(
    res.headers.get("www-authenticate"),
    'Bearer realm="trellis", error="insufficient_scope", error_description="missing scope", scope="orders:read orders:write"',
  );
  const body = await res.json();
  assert.equal(body.detail, "missing scope: orders:write");
  assert.deepEqual(body.missingScopes, ["orders:write"]);
  assert.equal(body.type, "https://trellis.dev/problems/insufficient-scope");
});

Deno.test("requireScopes() without a principal answers 401", async () => {
  const res = await call(chain(requestContext(), requireScopes("orders:read"))(whoami));
  assert.equal(res.status, 401);
  await res.body?.cancel();
});

Deno.test("requireScopes() refuses scopes that could not appear in a token", () => {
  assert.throws(() => requireScopes("two words"), TypeError);
  assert.throws(() => requireScopes('quo"te'), TypeError);
});
