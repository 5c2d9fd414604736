import { connectPostgres, type Database, migrate, type Migration } from "@trellis/platform/db";
import { createLogger } from "@trellis/platform/log";
import { OUTBOX_MIGRATIONS } from "@trellis/platform/outbox";
import { distributedOptionsFromEnv } from "../services/shared/distributed.ts";
import { connectServiceDatabase, type MigrationSet, serviceDatabaseUrl } from "../services/shared/infra.ts";
import { type Input, stringFlag, UsageError } from "./command.ts";
import type { SERVICES_WITH_DATABASES } from "./commands/migrate.ts";

/**
 * The migration sets of each service with a database, in the order it applies them at start-up (`infra.database(s,
 * { with })` in its service.ts, then its own `migrations/<service>/`). Keep in step with the services.
 */
export const MIGRATION_PLAN: Record<(typeof SERVICES_WITH_DATABASES)[number], readonly MigrationSet[]> = {
  auth: [],
  inventory: [OUTBOX_MIGRATIONS],
  payments: [OUTBOX_MIGRATIONS],
  orders: [OUTBOX_MIGRATIONS],
};

export const own = (service: string): MigrationSet => ({
  dir: new URL(`../migrations/${service}/`, import.meta.url),
  table: "schema_migrations",
});

/** One migration file of one service, applied or pending. */
export interface MigrationState extends Migration {
  service: string;
  table: string;
  file: string;
  /** When it was applied; `null` while pending. */
  appliedAt: string | null;
  /** `changed` when the file no longer matches the checksum recorded when it was applied. */
  state: "applied" | "pending" | "changed";
}

async function filesOf(
  set: MigrationSet,
): Promise<{ file: string; version: number; name: string; checksum: string }[]> {
  const files = [];
  const base = typeof set.dir === "string" ? new URL(`file://${set.dir.replace(/\/*$/, "/")}`) : set.dir;
  for await (const entry of Deno.readDir(base)) {
    const m = entry.isFile ? /^(\d+)_([^/\\]+)\.sql$/.exec(entry.name) : null;
    if (!m) continue;
    const bytes = await Deno.readFile(new URL(entry.name, base.href.endsWith("/") ? base : `${base.href}/`));
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const checksum = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    files.push({ file: entry.name, version: Number(m[1]), name: m[2], checksum });
  }
  return files.sort((a, b) => a.version - b.version);
}

/** Every migration of `service` and whether its database has it; a missing database has all of them pending. */
export async function migrationStatus(db: Database | undefined, service: string): Promise<MigrationState[]> {
  const out: MigrationState[] = [];
  for (const set of [...MIGRATION_PLAN[service as keyof typeof MIGRATION_PLAN], own(service)]) {
    const recorded = new Map<number, { checksum: string; applied_at: Date }>();
    if (db) {
      const [{ exists }] = await db.query<{ exists: boolean }>(
        "select to_regclass($1) is not null as exists",
        [set.table],
      );
      if (exists) {
        for (
          const r of await db.query<{ version: string; checksum: string; applied_at: Date }>(
            `select version, checksum, applied_at from ${set.table}`,
          )
        ) recorded.set(Number(r.version), r);
      }
    }
    for (const f of await filesOf(set)) {
      const r = recorded.get(f.version);
      out.push({
        service,
        table: set.table,
        file: f.file,
        version: f.version,
        name: f.name,
        checksum: f.checksum,
        appliedAt: r ? r.applied_at.toISOString() : null,
        state: !r ? "pending" : r.checksum === f.checksum ? "applied" : "changed",
      });
    }
  }
  return out;
}

export function servicesOf(input: Input): (keyof typeof MIGRATION_PLAN)[] {
  const wanted = stringFlag(input, "service");
  const all = Object.keys(MIGRATION_PLAN) as (keyof typeof MIGRATION_PLAN)[];
  if (wanted === undefined) return all;
  if (!(wanted in MIGRATION_PLAN)) {
    throw new UsageError(`--service must be one of ${Object.keys(MIGRATION_PLAN).join(", ")}, got ${wanted}`);
  }
  return [wanted as keyof typeof MIGRATION_PLAN];
}

export function databaseOf(env: Record<string, string | undefined>) {
  const options = distributedOptionsFromEnv(env, "trellis-cli", createLogger("trellis", { write: () => {} }));
  return { base: options.databaseUrl, prefix: options.databasePrefix ?? "trellis" };
}

/** The service's database, or `undefined` when it does not exist yet (nothing is created). */
export { connectServiceDatabase, migrate, type Migration };

export async function existing(base: string, prefix: string, service: string): Promise<Database | undefined> {
  const url = serviceDatabaseUrl(base, prefix, service);
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const server = connectPostgres(admin.href, { max: 1, applicationName: "trellis-cli" });
  try {
    const [row] = await server.query<{ n: number }>("select count(*)::int as n from pg_database where datname = $1", [
      `${prefix}_${service}`,
    ]);
    if (row.n === 0) return undefined;
  } finally {
    await server.close();
  }
  return connectPostgres(url, { max: 1, applicationName: "trellis-cli" });
}
