import assert from "node:assert/strict";
import { jwksHandler, staticKeySet } from "./jwks.ts";
import { exportPrivateJwk, exportPublicJwk, generateSigningKey, type PublicJwk, type SigningKey } from "./keys.ts";

Deno.test("jwksHandler() serves current and previous keys as cacheable JSON", async () => {
  const [current, previous] = [await generateSigningKey(), await generateSigningKey()];
  const keys = [await exportPublicJwk(current), await exportPublicJwk(previous)];
  const res = await jwksHandler(() => keys)(new Request("http://auth/.well-known/jwks.json"));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("cache-control"), "public, max-age=300");
  assert.deepEqual(await res.json(), { keys });
});

Deno.test("jwksHandler() never serves the private member of a key passed by mistake", async () => {
  const leaked = await exportPrivateJwk(await generateSigningKey());
  const res = await jwksHandler(() => [leaked as PublicJwk])(new Request("http://auth/jwks"));
  const body = await res.json();
  assert.equal(body.keys[0].d, undefined);
  assert.equal(body.keys[0].kid, leaked.kid);
});

Deno.test("jwksHandler() answers 405 problem+json to anything but GET and HEAD", async () => {
  const handler = jwksHandler(() => [], { maxAgeSec: 60 });
  const post = await handler(new Request("http://auth/jwks", { method: "POST" }));
  assert.equal(post.status, 405);
  assert.equal(post.headers.get("content-type"), "application/problem+json");
  await post.body?.cancel();
  const head = await handler(new Request("http://auth/jwks", { method: "HEAD" }));
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("cache-control"), "public, max-age=60");
  assert.equal(head.body, null);
});

Deno.test("staticKeySet() given a function follows rotation without being rebuilt", async () => {
  const [a, b] = [await generateSigningKey(), await generateSigningKey()];
  let active: SigningKey[] = [a];
  const keys = staticKeySet(() => active);
  assert.equal(await keys.get(a.kid), a.publicKey);
  assert.equal(await keys.get(b.kid), undefined);
  active = [b];
  assert.equal(await keys.get(b.kid), b.publicKey);
  assert.equal(await keys.get(a.kid), undefined);
});
