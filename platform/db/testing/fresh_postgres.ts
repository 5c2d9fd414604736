import postgres from "postgres";
import type { Database } from "../db.ts";
import { connectPostgres, ensureDatabase } from "../postgres.ts";
import type { DatabaseFixture } from "./conformance.ts";

/**
 * Disposable Postgres databases for tests, on the server at `DATABASE_URL` (default the local one).
 *
 * @example Where the test databases live
 * ```ts
 * import { BASE_URL } from "./fresh_postgres.ts";
 * new URL(BASE_URL).protocol; // "postgres:"
 * ```
 */
export const BASE_URL: string = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";

/**
 * The URL of database `database` on the {@linkcode BASE_URL} server (same host, user and options).
 *
 * @example
 * ```ts
 * import { urlFor } from "./fresh_postgres.ts";
 * new URL(urlFor("trellis_dbtest_1")).pathname; // "/trellis_dbtest_1"
 * ```
 */
export function urlFor(database: string): string {
  const url = new URL(BASE_URL);
  url.pathname = `/${database}`;
  return url.href;
}

/**
 * A database name no other test uses: `trellis_dbtest_` and 16 random hex digits, so leftovers are easy to find.
 *
 * @example
 * ```ts
 * import { uniqueName } from "./fresh_postgres.ts";
 * /^trellis_dbtest_[0-9a-f]{16}$/.test(uniqueName()); // true
 * ```
 */
export function uniqueName(): string {
  return `trellis_dbtest_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
}

/**
 * Drops database `name` on the {@linkcode BASE_URL} server if it exists, forcing its connections closed.
 *
 * @example Drop a database a crashed test left behind
 * ```ts ignore
 * import { dropDatabase } from "./fresh_postgres.ts";
 * await dropDatabase("trellis_dbtest_0123456789abcdef");
 * ```
 */
export async function dropDatabase(name: string): Promise<void> {
  const sql = postgres(urlFor("postgres"), { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await sql.end();
  }
}

/**
 * A fresh database per fixture, dropped on dispose.
 *
 * @example A throwaway database for one test
 * ```ts ignore
 * import { freshDatabase } from "./fresh_postgres.ts";
 * await using fixture = await freshDatabase();
 * await fixture.db.query("create table t (id int)");
 * ```
 */
export async function freshDatabase(): Promise<DatabaseFixture> {
  const name = uniqueName();
  await ensureDatabase(urlFor(name));
  const handles: Database[] = [];
  const open = () => {
    const db = connectPostgres(urlFor(name), { max: 4, applicationName: "trellis-db-test" });
    handles.push(db);
    return db;
  };
  return {
    db: open(),
    reopen: open,
    async [Symbol.asyncDispose]() {
      await Promise.all(handles.map((db) => db.close()));
      await dropDatabase(name);
    },
  };
}
