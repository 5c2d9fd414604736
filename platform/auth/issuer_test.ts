import assert from "node:assert/strict";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { createIssuer } from "./issuer.ts";
import { generateSigningKey } from "./keys.ts";

const NOW = Date.UTC(2030, 0, 1);

Deno.test("issue() signs an ES256 JWT with kid, typ and the registered claims", async () => {
  const key = await generateSigningKey();
  const issuer = createIssuer({ issuer: "https://auth.test", key, now: () => NOW });
  const token = await issuer.issue({
    sub: "u-1",
    aud: "orders",
    scopes: ["orders:read", "orders:write"],
    ttlSeconds: 300,
    extra: { tenant: "t-9" },
  });
  assert.deepEqual(decodeProtectedHeader(token), { alg: "ES256", kid: key.kid, typ: "JWT" });
  const claims = decodeJwt(token);
  assert.equal(claims.iss, "https://auth.test");
  assert.equal(claims.sub, "u-1");
  assert.equal(claims.aud, "orders");
  assert.equal(claims.scope, "orders:read orders:write");
  assert.equal(claims.iat, NOW / 1000);
  assert.equal(claims.nbf, NOW / 1000);
  assert.equal(claims.exp, NOW / 1000 + 300);
  assert.equal(claims.tenant, "t-9");
  assert.match(String(claims.jti), /^[0-9a-f-]{36}$/);
});

Deno.test("issue() gives every token its own jti", async () => {
  const issuer = createIssuer({ issuer: "https://auth.test", key: await generateSigningKey() });
  const request = { sub: "u-1", aud: ["a", "b"], scopes: [], ttlSeconds: 60 };
  const [a, b] = [decodeJwt(await issuer.issue(request)), decodeJwt(await issuer.issue(request))];
  assert.notEqual(a.jti, b.jti);
  assert.deepEqual(a.aud, ["a", "b"]);
});

Deno.test("issue() refuses reserved extra claims, bad lifetimes and scopes with spaces", async () => {
  const issuer = createIssuer({ issuer: "https://auth.test", key: await generateSigningKey() });
  const base = { sub: "u-1", aud: "orders", scopes: ["a"], ttlSeconds: 60 };
  await assert.rejects(issuer.issue({ ...base, extra: { exp: 1 } }), /exp: it is reserved/);
  await assert.rejects(issuer.issue({ ...base, ttlSeconds: 0 }), RangeError);
  await assert.rejects(issuer.issue({ ...base, ttlSeconds: 1.5 }), RangeError);
  await assert.rejects(issuer.issue({ ...base, scopes: ["a b"] }), TypeError);
  await assert.rejects(issuer.issue({ ...base, sub: "" }), TypeError);
});

Deno.test("createIssuer() refuses an empty issuer", () => {
  assert.throws(() => createIssuer({ issuer: "", key: { kid: "k", privateKey: {} as CryptoKey } }), TypeError);
});
