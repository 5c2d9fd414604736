import assert from "node:assert/strict";
import { hashPassword, needsRehash, verifyPassword } from "./password.ts";

Deno.test("hashPassword() uses 600000 PBKDF2-SHA256 iterations by default in a self-describing string", async () => {
  const encoded = await hashPassword("correct horse battery staple");
  assert.match(encoded, /^pbkdf2-sha256\$600000\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  assert.equal(await verifyPassword("correct horse battery staple", encoded), true);
  assert.equal(needsRehash(encoded), false);
});

Deno.test("verifyPassword() rejects a wrong password", async () => {
  const encoded = await hashPassword("s3cret", { iterations: 1000 });
  assert.equal(await verifyPassword("s3cret", encoded), true);
  assert.equal(await verifyPassword("S3cret", encoded), false);
  assert.equal(await verifyPassword("", encoded), false);
});

Deno.test("hashPassword() salts every hash, so equal passwords hash differently", async () => {
  const [a, b] = [await hashPassword("pw", { iterations: 1000 }), await hashPassword("pw", { iterations: 1000 })];
  assert.notEqual(a, b);
});

Deno.test("verifyPassword() handles non-ASCII passwords", async () => {
  const encoded = await hashPassword("pässwörd 🔑", { iterations: 1000 });
  assert.equal(await verifyPassword("pässwörd 🔑", encoded), true);
  assert.equal(await verifyPassword("passwort 🔑", encoded), false);
});

Deno.test("verifyPassword() answers false for encodings it cannot parse", async () => {
  const good = await hashPassword("pw", { iterations: 1000 });
  const [, , salt, hash] = good.split("$");
  for (
    const encoded of [
      "",
      "pw",
      `argon2id$1000$${salt}$${hash}`,
      `pbkdf2-sha256$0$${salt}$${hash}`,
      `pbkdf2-sha256$99999999$${salt}$${hash}`,
      `pbkdf2-sha256$1000$***$${hash}`,
      `pbkdf2-sha256$1000$${salt}$`,
      `pbkdf2-sha256$1000$${salt}$${hash}$extra`,
    ]
  ) {
    assert.equal(await verifyPassword("pw", encoded), false, encoded);
  }
});

Deno.test("needsRehash() flags hashes weaker than the current settings", async () => {
  assert.equal(needsRehash(await hashPassword("pw", { iterations: 1000 })), true);
  assert.equal(needsRehash(await hashPassword("pw", { iterations: 1000 }), { iterations: 1000 }), false);
  assert.equal(needsRehash("md5$abc"), true);
});

Deno.test("hashPassword() refuses iteration counts out of range", async () => {
  await assert.rejects(hashPassword("pw", { iterations: 0 }), RangeError);
  await assert.rejects(hashPassword("pw", { iterations: 1.5 }), RangeError);
});
