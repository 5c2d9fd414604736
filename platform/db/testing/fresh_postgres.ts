import postgres from "postgres";
import type { Database } from "../db.ts";
import { connectPostgres, ensureDatabase } from "../postgres.ts";
import type { DatabaseFixture } from "./conformance.ts";

/** Disposable Postgres databases for tests, on the server at `DATABASE_URL` (default the local one). */
export const BASE_URL: string = Deno.env.get("DATABASE_URL") ?? "postgres://postgres@127.0.0.1:5432/postgres";

export function urlFor(database: string): string {
  const url = new URL(BASE_URL);
  url.pathname = `/${database}`;
  return url.href;
}

export function uniqueName(): string {
  return `trellis_dbtest_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
}

export async function dropDatabase(name: string): Promise<void> {
  const sql = postgres(urlFor("postgres"), { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`drop database if exists "${name}" with (force)`);
  } finally {
    await sql.end();
  }
}

/** A fresh database per fixture, dropped on dispose. */
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
