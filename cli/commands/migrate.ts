import type { Command } from "../command.ts";
import type { Migration, MigrationState } from "../migrations.ts";
import { Progress } from "../progress.ts";
import { table } from "../table.ts";

/** The services with a database, as `--service` takes them (the keys of `MIGRATION_PLAN`, which its type holds to). */
export const SERVICES_WITH_DATABASES = ["auth", "inventory", "payments", "orders"] as const;

const SERVICE_FLAG = {
  service: {
    type: "string",
    value: "name",
    description: `only this service (${SERVICES_WITH_DATABASES.join(", ")})`,
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
    const { databaseOf, existing, migrationStatus, servicesOf } = await import("../migrations.ts");
    const { base, prefix } = databaseOf(cli.env);
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
    const { connectServiceDatabase, databaseOf, existing, migrate, MIGRATION_PLAN, migrationStatus, own, servicesOf } =
      await import("../migrations.ts");
    const { base, prefix } = databaseOf(cli.env);
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
