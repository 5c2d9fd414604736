import type { Database, Tx } from "@trellis/platform/db";
import {
  exportPrivateJwk,
  exportPublicJwk,
  generateSigningKey,
  importPrivateJwk,
  openPrivateJwk,
  type PrivateJwk,
  type PublicJwk,
  sealPrivateJwk,
  type SigningKey,
  type VerificationKey,
} from "@trellis/platform/auth";
import * as queries from "./queries.ts";

/** One published key: it verifies while published, and signs from `activatesAt` until a newer key activates. */
export interface RingKey {
  kid: string;
  key: SigningKey;
  publicJwk: PublicJwk;
  /** Epoch ms from which it may sign. */
  activatesAt: number;
  /** Epoch ms at which it leaves the JWKS; `undefined` while it has no successor. */
  retiresAt: number | undefined;
}

/**
 * The published keys as one auth instance last read them. Which key signs and which are published is decided from
 * the clock at each call, so instances that read the same rows switch keys at the same moment without re-reading.
 */
export class KeyRing {
  /** Newest activation first. */
  readonly keys: readonly RingKey[];

  constructor(keys: readonly RingKey[]) {
    if (keys.length === 0) throw new TypeError("Cannot make a key ring without keys");
    this.keys = [...keys].sort((a, b) => b.activatesAt - a.activatesAt);
  }

  /** The newest published key that has activated (the oldest published one if none has: clocks disagree). */
  signingKey(now: number = Date.now()): SigningKey {
    const live = this.#live(now);
    return (live.find((k) => k.activatesAt <= now) ?? live.at(-1) ?? this.keys[0]).key;
  }

  /** The public keys of the JWKS: every key not past its `retiresAt`, pending ones included. */
  published(now: number = Date.now()): PublicJwk[] {
    return this.#live(now).map((k) => k.publicJwk);
  }

  /** The keys tokens may be verified with: the published ones. */
  verificationKeys(now: number = Date.now()): VerificationKey[] {
    return this.#live(now).map((k) => k.key);
  }

  #live(now: number): RingKey[] {
    return this.keys.filter((k) => k.retiresAt === undefined || now < k.retiresAt);
  }
}

/** A key as `GET /admin/keys` lists it: no key material. */
export interface KeyInfo {
  kid: string;
  status: "pending" | "signing" | "verifying" | "retired";
  createdAt: string;
  activatesAt: string;
  retiresAt: string | null;
  retiredAt: string | null;
}

/** What a rotation did. */
export interface Rotation {
  /** The new key: published now, signing from `activatesAt`. */
  kid: string;
  activatesAt: string;
  /** The keys it supersedes, each published until its `retiresAt`. */
  retiring: { kid: string; retiresAt: string }[];
}

/** Timing of a rotation, in seconds. */
export interface RotateOptions {
  /** Between publishing the new key and signing with it. */
  publishLeadSec: number;
  /** How long the superseded key stays published once the new one signs. */
  overlapSec: number;
}

/**
 * Reads the published keys, decrypting their private halves with `kek`. Under one advisory lock, so concurrent
 * instances agree, it first retires keys past their `retiresAt` (erasing their private half), encrypts any private
 * key still stored in plaintext (rows from before encryption at rest), and creates a first key when none is
 * published. Keys already in `previous` are reused rather than decrypted again.
 *
 * A `kek` other than the one the keys were encrypted with fails with an error naming `AUTH_KEY_ENCRYPTION_KEY`.
 */
export async function loadKeyRing(db: Database, kek: CryptoKey, previous?: KeyRing): Promise<KeyRing> {
  return await db.transaction(async (tx) => {
    await queries.lockKeyRing(tx);
    await queries.retireExpiredKeys(tx);
    await sealPlaintextKeys(tx, kek);
    let rows = await queries.liveKeys(tx);
    if (rows.length === 0) {
      await insertKey(tx, kek, 0);
      rows = await queries.liveKeys(tx);
    }
    const known = new Map(previous?.keys.map((k) => [k.kid, k.key]));
    const keys: RingKey[] = [];
    for (const row of rows) {
      keys.push({
        kid: row.kid,
        key: known.get(row.kid) ?? await openKey(kek, row),
        publicJwk: row.public_jwk as PublicJwk,
        activatesAt: row.activates_ms,
        retiresAt: row.retires_ms ?? undefined,
      });
    }
    return new KeyRing(keys);
  });
}

/**
 * Creates a key that is published at once and signs after `publishLeadSec`; every published key without a
 * successor yet (normally the one signing now) is scheduled to retire `overlapSec` after the new key activates.
 */
export async function rotateKey(db: Database, kek: CryptoKey, options: RotateOptions): Promise<Rotation> {
  return await db.transaction(async (tx) => {
    await queries.lockKeyRing(tx);
    const { kid, activatesMs } = await insertKey(tx, kek, options.publishLeadSec);
    const retiring = await queries.scheduleRetirement(tx, { kid, overlapSec: options.overlapSec });
    return {
      kid,
      activatesAt: iso(activatesMs),
      retiring: retiring.map((r) => ({ kid: r.kid, retiresAt: iso(r.retires_ms) })),
    };
  });
}

/** Every key ever made, newest first, with its state at `now`. */
export async function listKeys(db: Database, now: number = Date.now()): Promise<KeyInfo[]> {
  const rows = await queries.listAllKeys(db);
  const isLive = (r: typeof rows[number]) => r.retired_ms === null && (r.retires_ms === null || now < r.retires_ms);
  const signing = rows.find((r) => isLive(r) && r.activates_ms <= now)?.kid;
  return rows.map((r) => ({
    kid: r.kid,
    status: !isLive(r) ? "retired" : r.kid === signing ? "signing" : r.activates_ms > now ? "pending" : "verifying",
    createdAt: iso(r.created_ms),
    activatesAt: iso(r.activates_ms),
    retiresAt: r.retires_ms === null ? null : iso(r.retires_ms),
    retiredAt: r.retired_ms === null ? null : iso(r.retired_ms),
  }));
}

async function insertKey(tx: Tx, kek: CryptoKey, leadSec: number): Promise<{ kid: string; activatesMs: number }> {
  const key = await generateSigningKey();
  const sealed = await sealPrivateJwk(kek, await exportPrivateJwk(key));
  const row = await queries.insertKey(tx, {
    kid: key.kid,
    publicJwk: await exportPublicJwk(key),
    privateEnc: sealed.ciphertext,
    privateIv: sealed.iv,
    leadSec,
  });
  return { kid: key.kid, activatesMs: row!.activates_ms };
}

async function sealPlaintextKeys(tx: Tx, kek: CryptoKey): Promise<void> {
  for (const row of await queries.plaintextKeys(tx)) {
    const sealed = await sealPrivateJwk(kek, { ...(row.private_jwk as PrivateJwk), kid: row.kid });
    await queries.sealKey(tx, { kid: row.kid, privateEnc: sealed.ciphertext, privateIv: sealed.iv });
  }
}

async function openKey(kek: CryptoKey, row: queries.LiveKeysRow): Promise<SigningKey> {
  if (row.private_enc === null || row.private_iv === null) {
    throw new Error(`Cannot load signing key ${row.kid}: its private key is missing`);
  }
  let jwk: PrivateJwk;
  try {
    jwk = await openPrivateJwk(kek, row.kid, { ciphertext: row.private_enc, iv: row.private_iv });
  } catch (cause) {
    throw new Error(`${(cause as Error).message} (check AUTH_KEY_ENCRYPTION_KEY)`, { cause });
  }
  return await importPrivateJwk(jwk);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
