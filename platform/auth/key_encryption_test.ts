import assert from "node:assert/strict";
import { importKeyEncryptionKey, openPrivateJwk, sealPrivateJwk } from "./key_encryption.ts";
import { exportPrivateJwk, generateSigningKey } from "./keys.ts";

const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const randomKek = () => importKeyEncryptionKey(b64(crypto.getRandomValues(new Uint8Array(32))));

Deno.test("sealPrivateJwk() output holds no private member in clear and opens back to the same JWK", async () => {
  const kek = await randomKek();
  const jwk = await exportPrivateJwk(await generateSigningKey());
  const sealed = await sealPrivateJwk(kek, jwk);
  const stored = JSON.stringify(sealed);
  assert.ok(!stored.includes(jwk.d) && !stored.includes('"d"'));
  assert.deepEqual(await openPrivateJwk(kek, jwk.kid, sealed), jwk);
});

Deno.test("sealPrivateJwk() uses a fresh IV each time", async () => {
  const kek = await randomKek();
  const jwk = await exportPrivateJwk(await generateSigningKey());
  const [a, b] = [await sealPrivateJwk(kek, jwk), await sealPrivateJwk(kek, jwk)];
  assert.notEqual(a.iv, b.iv);
  assert.notEqual(a.ciphertext, b.ciphertext);
});

Deno.test("openPrivateJwk() fails clearly under a wrong key-encryption key", async () => {
  const jwk = await exportPrivateJwk(await generateSigningKey());
  const sealed = await sealPrivateJwk(await randomKek(), jwk);
  await assert.rejects(
    openPrivateJwk(await randomKek(), jwk.kid, sealed),
    new RegExp(`^Error: Cannot decrypt signing key ${jwk.kid}: the key-encryption key is not the one`),
  );
});

Deno.test("openPrivateJwk() refuses a ciphertext moved onto another key's row", async () => {
  const kek = await randomKek();
  const [a, b] = [await generateSigningKey(), await generateSigningKey()];
  const sealedA = await sealPrivateJwk(kek, await exportPrivateJwk(a));
  await assert.rejects(openPrivateJwk(kek, b.kid, sealedA), /Cannot decrypt signing key/);
});

Deno.test("importKeyEncryptionKey() accepts standard and URL-safe base64 of 32 bytes only, naming the setting", async () => {
  const raw = new Uint8Array(32).fill(0xfb);
  await importKeyEncryptionKey(b64(raw));
  await importKeyEncryptionKey(b64(raw).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, ""));
  await assert.rejects(importKeyEncryptionKey(b64(new Uint8Array(16)), "AUTH_KEY_ENCRYPTION_KEY"), {
    name: "RangeError",
    message: /^Cannot use AUTH_KEY_ENCRYPTION_KEY as an AES-256 key: it decodes to 16 bytes/,
  });
  await assert.rejects(importKeyEncryptionKey("not base64!", "AUTH_KEY_ENCRYPTION_KEY"), /it is not base64/);
});
