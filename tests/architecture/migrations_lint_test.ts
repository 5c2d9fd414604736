/**
 * Every migration in the repository is safe to apply to a live database (README "Migrations"): this lints each
 * migration directory against `migrations/lint-baseline.json` and fails listing the findings. It also shows that what
 * the lint accepts runs under `migrate()` on a real Postgres, and that the `migrations:lint` CLI exits non-zero with
 * one line per finding.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize } from "node:path";
import {
  findMigrationDirectories,
  formatMigrationFinding,
  lintMigration,
  lintMigrationDirectory,
  migrate,
  readMigrationBaseline,
} from "@trellis/platform/db";
import { freshDatabase } from "@trellis/platform/db/testing";
import { within } from "@trellis/platform/testing";

const root = normalize(join(dirname(new URL(import.meta.url).pathname), "..", ".."));
const BASELINE = join(root, "migrations", "lint-baseline.json");

Deno.test("every migration directory of the repository passes the migration lint", async () => {
  const dirs = await findMigrationDirectories(root);
  const expected = [...Deno.readDirSync(join(root, "migrations"))]
    .filter((entry) => entry.isDirectory)
    .map((entry) => `migrations/${entry.name}`);
  for (const dir of [...expected, "platform/outbox/migrations"]) assert.ok(dirs.includes(dir), `${dir} not linted`);
  const baseline = await readMigrationBaseline(BASELINE);
  const findings = [];
  for (const dir of dirs) findings.push(...await lintMigrationDirectory(dir, { root, baseline }));
  assert.deepEqual(findings.map(formatMigrationFinding), [], "unsafe migrations (README, Migrations)");
});

Deno.test("every file the migration baseline grandfathers still exists", async () => {
  const { files } = await readMigrationBaseline(BASELINE);
  assert.ok(Object.keys(files).length > 0);
  const missing = Object.keys(files).filter((file) => {
    try {
      return !Deno.statSync(join(root, file)).isFile;
    } catch {
      return true;
    }
  });
  assert.deepEqual(missing, []);
});

const EXPAND = `
-- A table created here is new: indexing it, filling it and constraining it takes no lock anyone waits on.
create table customers (id text primary key, name text not null);
create index customers_by_name on customers (name);
insert into customers values ('c1', 'Ada'), ('c2', 'Grace');
update customers set name = upper(name);

create table orders (id text primary key, customer_id text not null, total bigint not null, note text);
insert into orders values ('o1', 'c1', 100, null);
`;

const EXPAND_EXISTING = `
-- Expand on existing tables: nullable column, constant default, constraints added NOT VALID.
alter table orders add column placed_at timestamptz, add column channel text not null default 'web';
alter table orders add constraint orders_customer_fk foreign key (customer_id) references customers (id) not valid;
alter table orders add constraint orders_total_positive check (total > 0) not valid;
alter table orders add constraint orders_note_set check (note is not null) not valid;
update orders set note = '' where note is null and id in (select id from orders where note is null limit 1000);
-- lint: allow index-not-concurrent (orders is tiny; migrate() runs each file in a transaction, so no CONCURRENTLY)
create index orders_by_customer on orders (customer_id);
`;

const VALIDATE = `
-- A later migration validates (SHARE UPDATE EXCLUSIVE: writes go on) and then SET NOT NULL uses the valid check.
alter table orders validate constraint orders_customer_fk;
alter table orders validate constraint orders_total_positive;
alter table orders validate constraint orders_note_set;
-- lint: allow set-not-null (orders_note_set is validated above, so Postgres skips the scan)
alter table orders alter column note set not null;
`;

Deno.test("a migration set the lint accepts applies with migrate() to a fresh Postgres database", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = {
      "001_expand.sql": EXPAND,
      "002_expand_existing.sql": EXPAND_EXISTING,
      "003_validate.sql": VALIDATE,
    };
    for (const [name, sql] of Object.entries(files)) {
      assert.deepEqual(lintMigration(sql, name).map(formatMigrationFinding), []);
      await Deno.writeTextFile(join(dir, name), sql);
    }
    await using fixture = await freshDatabase();
    const applied = await within(migrate(fixture.db, dir), 30_000, "migrate() of the accepted samples");
    assert.deepEqual(applied.map((m) => m.version), [1, 2, 3]);
    const constraints = await fixture.db.query<{ conname: string; convalidated: boolean }>(
      "select conname, convalidated from pg_constraint where conrelid = 'orders'::regclass and contype in ('c', 'f') " +
        "order by conname",
    );
    assert.deepEqual(constraints.map((c) => [c.conname, c.convalidated]), [
      ["orders_customer_fk", true],
      ["orders_note_set", true],
      ["orders_total_positive", true],
    ]);
    const [row] = await fixture.db.query<{ note: string; channel: string }>("select note, channel from orders");
    assert.deepEqual(row, { note: "", channel: "web" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the migrations:lint CLI prints one line per finding and exits 1, and exits 0 when clean", async () => {
  const work = await Deno.makeTempDir();
  const run = async () => {
    const command = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--config", join(root, "deno.json"), join(root, "scripts", "lint_migrations.ts")],
      cwd: work,
      stdout: "piped",
      stderr: "piped",
    });
    const { code, stdout } = await within(command.output(), 60_000, "lint_migrations.ts");
    return { code, lines: new TextDecoder().decode(stdout).split("\n").filter(Boolean) };
  };
  try {
    await Deno.mkdir(join(work, "migrations", "orders"), { recursive: true });
    await Deno.writeTextFile(join(work, "migrations", "orders", "001_init.sql"), "create table orders (id int);");
    assert.deepEqual(await run(), { code: 0, lines: [] });
    await Deno.writeTextFile(
      join(work, "migrations", "orders", "002_contract.sql"),
      "alter table orders drop column id;\n-- lint: allow drop-table\ndrop table orders;",
    );
    const { code, lines } = await run();
    assert.equal(code, 1);
    assert.deepEqual(lines.map((line) => line.slice(0, line.indexOf(": "))), [
      "migrations/orders/002_contract.sql:1 drop-column",
      "migrations/orders/002_contract.sql:2 override-reason",
      "migrations/orders/002_contract.sql:3 drop-table",
    ]);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
