import assert from "node:assert/strict";
import {
  exportPrivateJwk,
  exportPublicJwk,
  generateSigningKey,
  importKeyEncryptionKey,
  openPrivateJwk,
} from "@trellis/platform/auth";
import { migrate } from "@trellis/platform/db";
import { freshDatabase } from "@trellis/platform/db/testing";
import { migrateService } from "../shared/infra.ts";
import { listKeys, loadKeyRing, rotateKey } from "./keystore.ts";

const randomKek = () =>
  importKeyEncryptionKey(btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32)))));

/** A fresh Postgres database with the auth migrations applied. */
async function authDatabase() {
  const fixture = await freshDatabase();
  await migrateService(fixture.db, "auth");
  return fixture;
}

Deno.test("loadKeyRing() stores the private key encrypted: its row holds no d member in clear", async () => {
  await using fx = await authDatabase();
  const kek = await randomKek();
  const ring = await loadKeyRing(fx.db, kek);
  const [row] = await fx.db.query<{ kid: string; private_jwk: unknown; private_enc: string; private_iv: string }>(
    "select * from signing_keys",
  );
  assert.equal(row.kid, ring.signingKey().kid);
  assert.equal(row.private_jwk, null);
  const { d } = await openPrivateJwk(kek, row.kid, { ciphertext: row.private_enc, iv: row.private_iv });
  const stored = JSON.stringify(row);
  assert.ok(!stored.includes('"d"'), stored);
  assert.ok(!stored.includes(d), "the private scalar appears nowhere in the row");
});

Deno.test("loadKeyRing() under the wrong key-encryption key fails naming AUTH_KEY_ENCRYPTION_KEY", async () => {
  await using fx = await authDatabase();
  const { kid } = (await loadKeyRing(fx.db, await randomKek())).signingKey();
  await assert.rejects(
    loadKeyRing(fx.db, await randomKek()),
    new RegExp(`Cannot decrypt signing key ${kid}: the key-encryption key is not the one .*AUTH_KEY_ENCRYPTION_KEY`),
  );
});

Deno.test("loadKeyRing() encrypts a plaintext key stored before migration 002 and erases the plaintext", async () => {
  await using fx = await freshDatabase();
  const only001 = await Deno.makeTempDir();
  try {
    await Deno.copyFile(new URL("../../migrations/auth/001_init.sql", import.meta.url), `${only001}/001_init.sql`);
    await migrate(fx.db, only001);
  } finally {
    await Deno.remove(only001, { recursive: true });
  }
  const [live, retired] = [await generateSigningKey(), await generateSigningKey()];
  for (const [key, retiredAt] of [[live, null], [retired, "2020-01-01"]] as const) {
    await fx.db.query(
      "insert into signing_keys (kid, private_jwk, public_jwk, retired_at) values ($1, $2::jsonb, $3::jsonb, $4)",
      [key.kid, JSON.stringify(await exportPrivateJwk(key)), JSON.stringify(await exportPublicJwk(key)), retiredAt],
    );
  }
  await migrateService(fx.db, "auth");
  const [retiredRow] = await fx.db.query("select private_jwk from signing_keys where kid = $1", [retired.kid]);
  assert.equal(retiredRow.private_jwk, null, "the migration erases retired private keys");

  const ring = await loadKeyRing(fx.db, await randomKek());
  assert.equal(ring.signingKey().kid, live.kid, "the existing key keeps signing");
  const rows = await fx.db.query<{ kid: string; private_jwk: unknown; private_enc: string | null }>(
    "select kid, private_jwk, private_enc from signing_keys order by kid",
  );
  for (const row of rows) assert.equal(row.private_jwk, null, `plaintext left in ${row.kid}`);
  assert.ok(rows.find((r) => r.kid === live.kid)!.private_enc);
});

Deno.test("rotateKey() publishes the new key at once, signs with it after the lead, retires the old after the overlap", async () => {
  await using fx = await authDatabase();
  const kek = await randomKek();
  const old = (await loadKeyRing(fx.db, kek)).signingKey().kid;
  const rotation = await rotateKey(fx.db, kek, { publishLeadSec: 60, overlapSec: 900 });
  const activates = Date.parse(rotation.activatesAt);
  assert.deepEqual(rotation.retiring, [{ kid: old, retiresAt: new Date(activates + 900_000).toISOString() }]);

  const ring = await loadKeyRing(fx.db, kek);
  const now = Date.now();
  assert.deepEqual(ring.published(now).map((k) => k.kid).sort(), [old, rotation.kid].sort());
  assert.equal(ring.signingKey(now).kid, old, "not signing with the new key before the lead time");
  assert.equal(ring.signingKey(activates).kid, rotation.kid);
  assert.deepEqual(ring.published(activates + 899_999).map((k) => k.kid).sort(), [old, rotation.kid].sort());
  assert.deepEqual(ring.published(activates + 900_000).map((k) => k.kid), [rotation.kid]);
  assert.deepEqual(ring.verificationKeys(activates + 900_000).map((k) => k.kid), [rotation.kid]);

  const listed = await listKeys(fx.db, now);
  assert.deepEqual(listed.map((k) => [k.kid, k.status]), [[rotation.kid, "pending"], [old, "signing"]]);
  assert.ok(listed.every((k) => !("d" in k) && !("privateJwk" in k)));
  assert.deepEqual(
    (await listKeys(fx.db, activates)).map((k) => k.status),
    ["signing", "verifying"],
  );
});

Deno.test("loadKeyRing() marks keys past their overlap retired and erases their private half", async () => {
  await using fx = await authDatabase();
  const kek = await randomKek();
  const old = (await loadKeyRing(fx.db, kek)).signingKey().kid;
  const rotation = await rotateKey(fx.db, kek, { publishLeadSec: 0, overlapSec: 0 });
  const ring = await loadKeyRing(fx.db, kek);
  assert.deepEqual(ring.published().map((k) => k.kid), [rotation.kid]);
  const [row] = await fx.db.query<{ retired_at: Date | null; private_enc: string | null; private_iv: string | null }>(
    "select retired_at, private_enc, private_iv from signing_keys where kid = $1",
    [old],
  );
  assert.ok(row.retired_at !== null);
  assert.equal(row.private_enc, null);
  assert.equal(row.private_iv, null);
  const listed = await listKeys(fx.db);
  assert.deepEqual(listed.map((k) => [k.kid, k.status]), [[rotation.kid, "signing"], [old, "retired"]]);
  assert.ok(listed[1].retiredAt);
});

Deno.test("loadKeyRing() lets two instances starting together on an empty database agree on one key", async () => {
  await using fx = await authDatabase();
  const kek = await randomKek();
  const [a, b] = await Promise.all([loadKeyRing(fx.db, kek), loadKeyRing(fx.reopen(), kek)]);
  assert.equal(a.signingKey().kid, b.signingKey().kid);
  const rotation = await rotateKey(fx.db, kek, { publishLeadSec: 0, overlapSec: 60 });
  const reread = await loadKeyRing(fx.reopen(), kek, b);
  assert.equal(reread.signingKey().kid, rotation.kid, "the other instance sees the rotation on its next read");
  assert.equal(reread.keys.find((k) => k.kid === a.signingKey().kid)?.key, b.keys[0].key, "known keys are reused");
});
