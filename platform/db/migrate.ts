import type { Database, Tx } from "./db.ts";

/**
 * A migration file, applied or pending.
 *
 * @example Report what a deploy applied
 * ```ts
 * import type { Migration } from "./migrate.ts";
 * const applied: Migration[] = [{ version: 1, name: "orders", checksum: "9f86d081884c7d65" }];
 * const summary = applied.map((m) => `${m.version}_${m.name}`).join(", "); // "1_orders"
 * ```
 */
export interface Migration {
  /** The `NNN` prefix of the file name, as a number. */
  version: number;
  /** The part of the file name between `NNN_` and `.sql`. */
  name: string;
  /** Hex SHA-256 of the file's bytes. */
  checksum: string;
}

/**
 * Options for {@linkcode migrate}.
 *
 * @example A library's migrations beside the service's
 * ```ts
 * import type { MigrateOptions } from "./migrate.ts";
 * const options: MigrateOptions = {
 *   table: "outbox_migrations",
 *   onApplied: (line, migration) => console.log(line, migration.checksum),
 * };
 * ```
 */
export interface MigrateOptions {
  /**
   * Receives one line per applied migration.
   * @default {undefined}
   */
  onApplied?: (message: string, migration: Migration) => void;
  /**
   * Table that records applied versions. Give each independent set of migrations its own (a library's tables beside
   * a service's, say), since versions are only unique within one set.
   * @default {"schema_migrations"}
   */
  table?: string;
}

const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

const FILE_NAME = /^(\d+)_([^/\\]+)\.sql$/;
/** Fixed advisory lock key shared by every migrator ("trellis_migrate" folded into an int8). */
const LOCK_KEY = "7390017242360262403";

const createTable = (table: string) =>
  `create table if not exists ${table} (
  version bigint primary key,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null default now()
)`;

/**
 * Applies the `NNN_name.sql` files of `dir` that are not applied yet, in version order, each in its own transaction,
 * recording them in `schema_migrations (version, name, checksum, applied_at)` (or `options.table`). Resolves the
 * migrations it applied.
 *
 * Concurrent migrators (several replicas starting at once) apply each file once: every transaction takes a
 * transaction-scoped advisory lock on a fixed key and re-checks before applying. A file whose checksum differs from
 * the one recorded when it was applied is an error naming the file; nothing after it is applied. A file may hold
 * several statements.
 *
 * @example Migrate a service's database at start-up
 * ```ts
 * import { createPglite } from "./pglite.ts";
 * import { migrate } from "./migrate.ts";
 * await using pglite = await createPglite();
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/001_orders.sql`, "create table orders (id text primary key)");
 * const applied = await migrate(pglite.database("orders"), dir, { onApplied: (line) => console.log(line) });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function migrate(db: Database, dir: string | URL, options: MigrateOptions = {}): Promise<Migration[]> {
  const table = options.table ?? "schema_migrations";
  if (!TABLE_NAME.test(table)) {
    throw new TypeError(`Cannot record migrations in table ${JSON.stringify(table)}: it must be a plain identifier`);
  }
  const files = await readMigrations(dir);

  const recorded = await db.transaction(async (tx) => {
    await lock(tx);
    await tx.query(createTable(table));
    return await tx.query<{ version: string; checksum: string }>(`select version, checksum from ${table}`);
  });
  const checksums = new Map(recorded.map((row) => [Number(row.version), row.checksum]));
  for (const file of files) {
    const checksum = checksums.get(file.version);
    if (checksum !== undefined) assertUnchanged(file, checksum);
  }

  const applied: Migration[] = [];
  for (const file of files.filter((file) => !checksums.has(file.version))) {
    const didApply = await db.transaction(async (tx) => {
      await lock(tx);
      const [row] = await tx.query<{ checksum: string }>(
        `select checksum from ${table} where version = $1`,
        [file.version],
      );
      if (row) {
        assertUnchanged(file, row.checksum);
        return false;
      }
      await tx.query(file.sql);
      await tx.query(`insert into ${table} (version, name, checksum) values ($1, $2, $3)`, [
        file.version,
        file.name,
        file.checksum,
      ]);
      return true;
    });
    if (!didApply) continue;
    const migration = { version: file.version, name: file.name, checksum: file.checksum };
    applied.push(migration);
    options.onApplied?.(`applied migration ${file.fileName}`, migration);
  }
  return applied;
}

interface MigrationFile extends Migration {
  fileName: string;
  sql: string;
}

async function readMigrations(dir: string | URL): Promise<MigrationFile[]> {
  const base = typeof dir === "string" ? `${dir.replace(/\/+$/, "")}/` : new URL(dir.href.replace(/\/*$/, "/"));
  const files: MigrationFile[] = [];
  const seen = new Map<number, string>();
  for await (const entry of Deno.readDir(dir)) {
    const match = entry.isFile ? FILE_NAME.exec(entry.name) : null;
    if (!match) continue;
    const version = Number(match[1]);
    const clash = seen.get(version);
    if (clash !== undefined) {
      throw new Error(`Cannot migrate as ${clash} and ${entry.name} share version ${version}`);
    }
    seen.set(version, entry.name);
    const bytes = await Deno.readFile(typeof base === "string" ? base + entry.name : new URL(entry.name, base));
    files.push({
      version,
      name: match[2],
      fileName: entry.name,
      sql: new TextDecoder().decode(bytes),
      checksum: await sha256(bytes),
    });
  }
  return files.sort((a, b) => a.version - b.version);
}

function assertUnchanged(file: MigrationFile, recorded: string): void {
  if (file.checksum !== recorded) {
    throw new Error(
      `Cannot migrate as ${file.fileName} changed after it was applied: checksum was ${recorded}, is ${file.checksum}`,
    );
  }
}

async function lock(tx: Tx): Promise<void> {
  await tx.query("select pg_advisory_xact_lock($1::int8)", [LOCK_KEY]);
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
