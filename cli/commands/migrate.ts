import { connectPostgres, type Database, migrate, type Migration } from "@trellis/platform/db";
import { OUTBOX_MIGRATIONS } from "@trellis/platform/outbox";
import { distributedOptionsFromEnv } from "../../services/shared/distributed.ts";
import { connectServiceDatabase, type MigrationSet, serviceDatabaseUrl } from "../../services/shared/infra.ts";
import { createLogger } from "@trellis/platform/log";
import { type Command, type Input, stringFlag, UsageError } from "../command.ts";
import type { Cli } from "../context.ts";
import { Progress } from "../progress.ts";
import { table } from "../table.ts";

/**
 * The migration sets of each service with a database, in the order it applies them at start-up (`infra.database(s,
 * { with })` in its service.ts, then its own `migrations/<service>/`). Keep in step with the services.
 */
export const MIGRATION_PLAN: Record<string, readonly MigrationSet[]> = {
  auth: [],
  inventory: [OUTBOX_MIGRATIONS],
  payments: [OUTBOX_MIGRATIONS],
  orders: [OUTBOX_MIGRATIONS],
};

const own = (service: string): MigrationSet => ({
  dir: new URL(`../../migrations/${service}/`, import.meta.url),
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
  for (const set of [...MIGRATION_PLAN[service], own(service)]) {
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

function servicesOf(input: Input): string[] {
  const wanted = stringFlag(input, "service");
  if (wanted === undefined) return Object.keys(MIGRATION_PLAN);
  if (!(wanted in MIGRATION_PLAN)) {
    throw new UsageError(`--service must be one of ${Object.keys(MIGRATION_PLAN).join(", ")}, got ${wanted}`);
  }
  return [wanted];
}

function databaseOf(cli: Cli) {
  const options = distributedOptionsFromEnv(cli.env, "trellis-cli", createLogger("trellis", { write: () => {} }));
  return { base: options.databaseUrl, prefix: options.databasePrefix ?? "trellis" };
}

/** The service's database, or `undefined` when it does not exist yet (nothing is created). */
async function existing(base: string, prefix: string, service: string): Promise<Database | undefined> {
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

const SERVICE_FLAG = {
  service: {
    type: "string",
    value: "name",
    description: `only this service (${Object.keys(MIGRATION_PLAN).join(", ")})`,
  },
} as const;

const DETAILS = [
  "Each service's database is <DATABASE_PREFIX>_<service> on the server of DATABASE_URL, as the services run it in",
  "distributed mode (defaults: trellis, postgres://postgres@127.0.0.1:5432/postgres).",
];

export const migrateStatus: Command = {
  path: ["migrate", "status"],
  summary: "Lists every service's migrations and whether its database has applied them; exits 1 if any file changed.",
  flags: SERVICE_FLAG,
  details: DETAILS,
  async run(cli, input) {
    const { base, prefix } = databaseOf(cli);
    const states: MigrationState[] = [];
    for (const service of servicesOf(input)) {
      const db = await existing(base, prefix, service);
      try {
        states.push(...await migrationStatus(db, service));
      } finally {
        await db?.close();
      }
    }
    if (cli.json) {
      cli.printJson({ migrations: states });
    } else {
      cli.print(table(
        ["SERVICE", "TABLE", "FILE", "STATE", "APPLIED AT"],
        states.map((s) => [s.service, s.table, s.file, s.state, s.appliedAt]),
      ));
      const pending = states.filter((s) => s.state === "pending").length;
      cli.print(`${states.length - pending} applied, ${pending} pending`);
    }
    return states.some((s) => s.state === "changed") ? 1 : 0;
  },
};

export const migrateUp: Command = {
  path: ["migrate", "up"],
  summary: "Applies every pending migration of each service (creating its database when missing), as start-up does.",
  flags: SERVICE_FLAG,
  details: DETAILS,
  async run(cli, input) {
    const { base, prefix } = databaseOf(cli);
    const services = servicesOf(input);
    const pendingTotal = await (async () => {
      let n = 0;
      for (const s of services) {
        const db = await existing(base, prefix, s);
        try {
          n += (await migrationStatus(db, s)).filter((m) => m.state === "pending").length;
        } finally {
          await db?.close();
        }
      }
      return n;
    })();
    const progress = new Progress("migrate", pendingTotal);
    const applied: (Migration & { service: string; table: string })[] = [];
    try {
      for (const service of services) {
        const db = await connectServiceDatabase(base, prefix, service);
        try {
          for (const set of [...MIGRATION_PLAN[service], own(service)]) {
            await migrate(db, set.dir, {
              table: set.table,
              onApplied: (_line, m) => {
                applied.push({ ...m, service, table: set.table });
                progress.tick(1, `${service} ${m.version}_${m.name}`);
              },
            });
          }
        } finally {
          await db.close();
        }
      }
    } finally {
      progress.done();
    }
    if (cli.json) {
      cli.printJson({ applied });
    } else if (applied.length === 0) {
      cli.print("nothing to apply: every migration is applied");
    } else {
      cli.print(
        table(["SERVICE", "TABLE", "VERSION", "NAME"], applied.map((m) => [m.service, m.table, m.version, m.name])),
      );
      cli.print(`${applied.length} applied`);
    }
    return 0;
  },
};
