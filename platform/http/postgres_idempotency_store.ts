import type { Queryable } from "../db/mod.ts";
import type { IdempotencyClaim, IdempotencyStore, StoredResponse } from "./idempotency.ts";

/**
 * The migrations that create the `idempotency_keys` table {@linkcode PostgresIdempotencyStore} uses. Apply them in the
 * database that holds the keys, with their own bookkeeping table.
 *
 * @example Apply them before the service's own migrations
 * ```ts ignore
 * import { migrate } from "@trellis/platform/db";
 * await migrate(db, IDEMPOTENCY_MIGRATIONS.dir, { table: IDEMPOTENCY_MIGRATIONS.table });
 * ```
 */
export const IDEMPOTENCY_MIGRATIONS: { readonly dir: URL; readonly table: string } = Object.freeze({
  dir: new URL("./migrations/", import.meta.url),
  table: "idempotency_schema_migrations",
});

/**
 * Budget of `complete` and `release`, which run after the handler and so often after the request's deadline (a 504 is
 * exactly when the key must be released): they get their own instead of the request context's.
 */
const SETTLE_BUDGET_MS = 5_000;
// A release or an expiry can remove the row between a refused insert and the read of it; a few rounds settle that.
const CLAIM_ROUNDS = 3;

/**
 * An {@linkcode IdempotencyStore} on the `Database` contract (Postgres or PGlite), shared by every process using the
 * database. A claim is `insert … on conflict do nothing`, so of concurrent claims exactly one row is inserted; each
 * call is its own statement (autocommit), not part of any handler transaction.
 *
 * @example Keys in a service's database
 * ```ts ignore
 * import { migrate } from "@trellis/platform/db";
 * import { idempotency, IDEMPOTENCY_MIGRATIONS, PostgresIdempotencyStore } from "@trellis/platform/http";
 * await migrate(db, IDEMPOTENCY_MIGRATIONS.dir, { table: IDEMPOTENCY_MIGRATIONS.table });
 * const middleware = idempotency(new PostgresIdempotencyStore(db));
 * ```
 */
export class PostgresIdempotencyStore implements IdempotencyStore {
  readonly #db: Queryable;

  constructor(db: Queryable) {
    this.#db = db;
  }

  async claim(
    scope: string,
    key: string,
    fingerprint: string,
    now: number,
    leaseUntil: number,
  ): Promise<IdempotencyClaim> {
    for (let round = 0; round < CLAIM_ROUNDS; round++) {
      await this.#db.query("delete from idempotency_keys where scope = $1 and key = $2 and expires_at <= $3", [
        scope,
        key,
        now,
      ]);
      const token = crypto.randomUUID();
      const inserted = await this.#db.query(
        `insert into idempotency_keys (scope, key, token, fingerprint, expires_at) values ($1, $2, $3, $4, $5)
         on conflict do nothing returning token`,
        [scope, key, token, fingerprint, leaseUntil],
      );
      if (inserted.length === 1) return { claimed: true, token };
      const [row] = await this.#db.query<
        { fingerprint: string; status: number | null; headers: Record<string, string> | null; body: Uint8Array | null }
      >(
        "select fingerprint, status, headers, body from idempotency_keys where scope = $1 and key = $2 and expires_at > $3",
        [scope, key, now],
      );
      if (!row) continue;
      const response: StoredResponse | undefined = row.status === null ? undefined : {
        status: row.status,
        headers: Object.entries(row.headers ?? {}),
        body: new Uint8Array(row.body ?? new Uint8Array()),
      };
      return { claimed: false, record: { fingerprint: row.fingerprint, response } };
    }
    throw new Error(`Cannot claim idempotency key as it changed hands ${CLAIM_ROUNDS} times while being read`);
  }

  async complete(
    scope: string,
    key: string,
    token: string,
    response: StoredResponse,
    expiresAt: number,
  ): Promise<void> {
    await this.#db.query(
      `update idempotency_keys set status = $4, headers = $5, body = $6, expires_at = $7
       where scope = $1 and key = $2 and token = $3`,
      [scope, key, token, response.status, Object.fromEntries(response.headers), response.body, expiresAt],
      { signal: AbortSignal.timeout(SETTLE_BUDGET_MS) },
    );
  }

  async release(scope: string, key: string, token: string): Promise<void> {
    await this.#db.query(
      "delete from idempotency_keys where scope = $1 and key = $2 and token = $3",
      [scope, key, token],
      { signal: AbortSignal.timeout(SETTLE_BUDGET_MS) },
    );
  }

  async purge(now: number): Promise<number> {
    const [row] = await this.#db.query<{ n: number }>(
      "with gone as (delete from idempotency_keys where expires_at <= $1 returning 1) select count(*)::int as n from gone",
      [now],
    );
    return row.n;
  }
}
