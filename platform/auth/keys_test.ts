import assert from "node:assert/strict";
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from "jose";
import {
  exportPrivateJwk,
  exportPublicJwk,
  generateSigningKey,
  importPrivateJwk,
  importPublicJwk,
  type PrivateJwk,
} from "./keys.ts";

async function signsFor(privateKey: CryptoKey, publicKey: CryptoKey): Promise<boolean> {
  const data = new TextEncoder().encode("payload");
  const alg = { name: "ECDSA", hash: "SHA-256" };
  return await crypto.subtle.verify(alg, publicKey, await crypto.subtle.sign(alg, privateKey, data), data);
}

Deno.test("generateSigningKey() names the key by its RFC 7638 SHA-256 thumbprint", async () => {
  const key = await generateSigningKey();
  assert.equal(key.kid, await calculateJwkThumbprint(await exportJWK(key.publicKey), "sha256"));
  assert.match(key.kid, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(await signsFor(key.privateKey, key.publicKey));
});

Deno.test("exportPublicJwk() gives an ES256 signing JWK with no private member", async () => {
  const key = await generateSigningKey();
  const jwk = await exportPublicJwk(key);
  assert.deepEqual(Object.keys(jwk).sort(), ["alg", "crv", "kid", "kty", "use", "x", "y"]);
  assert.equal(jwk.alg, "ES256");
  assert.equal(jwk.use, "sig");
  assert.equal(jwk.kid, key.kid);
});

Deno.test("a private JWK survives a JSON round trip and signs for the original public key", async () => {
  const key = await generateSigningKey();
  const stored = JSON.parse(JSON.stringify(await exportPrivateJwk(key))) as PrivateJwk;
  assert.equal(typeof stored.d, "string");
  const loaded = await importPrivateJwk(stored);
  assert.equal(loaded.kid, key.kid);
  assert.ok(await signsFor(loaded.privateKey, key.publicKey));
  assert.equal(loaded.privateKey.extractable, false);
  await assert.rejects(exportPrivateJwk(loaded), TypeError);
});

Deno.test("importPrivateJwk() refuses a JWK whose kid is not its thumbprint", async () => {
  const stored = await exportPrivateJwk(await generateSigningKey());
  await assert.rejects(importPrivateJwk({ ...stored, kid: "someone-else" }), /does not match its thumbprint/);
});

Deno.test("importPublicJwk() refuses keys that are not EC P-256 for ES256 signatures", async () => {
  const { publicKey } = await generateKeyPair("RS256", { extractable: true });
  await assert.rejects(importPublicJwk(await exportJWK(publicKey)), TypeError);
  const ec = await exportPublicJwk(await generateSigningKey());
  await assert.rejects(importPublicJwk({ ...ec, alg: "ES384" }), /alg is ES384/);
  await assert.rejects(importPublicJwk({ ...ec, use: "enc" }), /use is enc/);
});

Deno.test("importPublicJwk() fills in a missing kid from the thumbprint", async () => {
  const key = await generateSigningKey();
  const { kid: _kid, ...jwk } = await exportPublicJwk(key);
  assert.equal((await importPublicJwk(jwk)).kid, key.kid);
});
