import type { Database } from "../../platform/db/db.ts";
import {
  exportPrivateJwk,
  exportPublicJwk,
  generateSigningKey,
  importPrivateJwk,
  type PrivateJwk,
  type PublicJwk,
  type SigningKey,
} from "../../platform/auth/keys.ts";

/** The signing key in use and the public keys to publish. */
export interface KeyRing {
  current: SigningKey;
  published: PublicJwk[];
}

/**
 * Loads the newest unretired signing key, creating one when there is none. Concurrent starters agree on one key:
 * creation happens under an advisory lock.
 */
export async function loadKeyRing(db: Database): Promise<KeyRing> {
  return await db.transaction(async (tx) => {
    await tx.query("select pg_advisory_xact_lock(7347001)");
    let rows = await tx.query<{ kid: string; private_jwk: PrivateJwk | string; public_jwk: PublicJwk | string }>(
      "select kid, private_jwk, public_jwk from signing_keys where retired_at is null order by created_at desc",
    );
    if (rows.length === 0) {
      const key = await generateSigningKey();
      const priv = await exportPrivateJwk(key);
      const pub = await exportPublicJwk(key);
      await tx.query("insert into signing_keys (kid, private_jwk, public_jwk) values ($1, $2::jsonb, $3::jsonb)", [
        key.kid,
        JSON.stringify(priv),
        JSON.stringify(pub),
      ]);
      rows = [{ kid: key.kid, private_jwk: priv, public_jwk: pub }];
    }
    const parse = <T>(v: T | string): T => typeof v === "string" ? JSON.parse(v) : v;
    return {
      current: await importPrivateJwk(parse(rows[0].private_jwk)),
      published: rows.map((r) => parse(r.public_jwk)),
    };
  });
}
