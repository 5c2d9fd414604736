import assert from "node:assert/strict";
import {
  findMigrationDirectories,
  formatMigrationFinding,
  lintMigration,
  lintMigrationDirectory,
  MIGRATION_LINT_RULES,
  migrationChecksum,
  type MigrationLintRule,
  readMigrationBaseline,
} from "./migration_lint.ts";

const rules = (sql: string) => lintMigration(sql).map((f) => f.rule);

/** Per rule: statements on an existing table that break it, and near misses that must pass. */
const SAMPLES: Record<string, { bad: string[]; good: string[] }> = {
  "drop-table": {
    bad: ["drop table orders", "drop table if exists public.orders cascade", "drop table scratch, orders"],
    good: ["create table scratch (id int); drop table scratch", "drop index orders_by_customer"],
  },
  "drop-column": {
    bad: [
      "alter table orders drop column legacy",
      "alter table orders drop legacy",
      "alter table orders drop if exists x",
    ],
    good: ["alter table orders drop constraint orders_status_check", "alter table orders alter column x drop not null"],
  },
  "rename-table": {
    bad: ["alter table orders rename to purchases", "alter table if exists orders rename to purchases"],
    good: ["alter table orders rename constraint a to b"],
  },
  "rename-column": {
    bad: ["alter table orders rename column reason to why", "alter table orders rename reason to why"],
    good: ["create table t (a int); alter table t rename column a to b"],
  },
  "set-not-null": {
    bad: ["alter table orders alter column reason set not null", "alter table orders alter reason set not null"],
    good: ["alter table orders alter column reason drop not null", "alter table orders alter column r set default ''"],
  },
  "not-null-column": {
    bad: ["alter table orders add column note text not null", "alter table orders add note text not null check (1=1)"],
    good: [
      "alter table orders add column note text",
      "alter table orders add column note text not null default ''",
      "alter table orders add column if not exists note text default 'x' not null",
    ],
  },
  "volatile-default": {
    bad: [
      "alter table orders add column ref uuid default gen_random_uuid()",
      "alter table orders add column seq bigserial",
      "alter table orders add column n int generated always as identity",
      "alter table orders add column cents bigint generated always as (total * 100) stored",
      "alter table orders add column at timestamptz not null default clock_timestamp()",
    ],
    good: [
      "alter table orders add column at timestamptz not null default now()",
      "alter table orders add column random_seed int",
      "alter table orders alter column ref set default gen_random_uuid()",
      "create table t (id bigserial primary key, ref uuid default gen_random_uuid())",
    ],
  },
  "alter-column-type": {
    bad: ["alter table orders alter column total type numeric", "alter table orders alter total set data type bigint"],
    good: ["alter table orders alter column total set default 0"],
  },
  "constraint-not-valid": {
    bad: [
      "alter table orders add constraint positive check (total > 0)",
      "alter table orders add check (total > 0)",
      "alter table orders add constraint fk foreign key (customer_id) references customers (id)",
      "alter table orders add foreign key (customer_id) references customers",
      "alter table orders add column customer_ref text references customers (id)",
      "alter table orders add column score int check (score >= 0)",
    ],
    good: [
      "alter table orders add constraint positive check (total > 0) not valid",
      "alter table orders add constraint fk foreign key (c) references customers (id) not valid",
      "alter table orders validate constraint fk",
    ],
  },
  "index-not-concurrent": {
    bad: [
      "create index orders_by_customer on orders (customer_id)",
      "create unique index if not exists o on only public.orders (id)",
      "create index on orders using gin (items)",
      "alter table orders add constraint orders_ref unique (ref)",
      "alter table orders add primary key (id)",
    ],
    good: [
      "create table t (id int); create index t_id on t (id)",
      "alter table orders add constraint orders_ref unique using index orders_ref_idx",
    ],
  },
  "runs-outside-transaction": {
    bad: [
      "create index concurrently orders_by_customer on orders (customer_id)",
      "drop index concurrently orders_by_customer",
      "reindex index concurrently orders_by_customer",
      "refresh materialized view concurrently order_totals",
      "vacuum orders",
      "create database other",
    ],
    good: ["analyze orders", "create index concurrently_named on t2 (id)"],
  },
  "transaction-control": {
    bad: ["begin", "commit", "start transaction isolation level serializable", "rollback", "end"],
    good: ["create function f() returns int begin atomic select 1; end", "do $$ begin perform 1; end $$"],
  },
  "vacuum-full": {
    bad: ["vacuum full orders", "vacuum (full, analyze) orders"],
    good: ["vacuum analyze orders"],
  },
  "cluster": {
    bad: ["cluster orders using orders_pkey", "cluster"],
    good: ["comment on table orders is 'cluster this some day'"],
  },
  "unbounded-update": {
    bad: [
      "update orders set reason = ''",
      "update only orders o set reason = (select r from x where x.id = o.id)",
      "with t as (select 1) update orders set reason = ''",
    ],
    good: [
      "update orders set reason = '' where reason is null",
      "update orders set reason = x.r from x where x.id = orders.id",
      "create table t (id int); update t set id = 1",
    ],
  },
  "unbounded-delete": {
    bad: ["delete from orders", "delete from only orders using x"],
    good: ["delete from orders where id = 'x'", "create table t (id int); delete from t"],
  },
};

Deno.test("lintMigration() has bad and good samples for every statement rule", () => {
  const statementRules = Object.keys(MIGRATION_LINT_RULES).filter((r) =>
    !r.startsWith("override-") && r !== "baseline-changed"
  );
  assert.deepEqual(Object.keys(SAMPLES).sort(), statementRules.sort());
});

for (const [rule, { bad, good }] of Object.entries(SAMPLES)) {
  Deno.test(`lintMigration() flags ${rule} on its bad samples and not on its good ones`, () => {
    for (const sql of bad) assert.ok(rules(sql).includes(rule as MigrationLintRule), `${sql} should break ${rule}`);
    for (const sql of good) assert.ok(!rules(sql).includes(rule as MigrationLintRule), `${sql} should pass ${rule}`);
  });
}

Deno.test("lintMigration() reports file, the statement's first line, rule and why", () => {
  const sql = "-- contract\ncreate table t (id int);\n\nalter table orders\n  drop column legacy;\n";
  assert.deepEqual(lintMigration(sql, "migrations/orders/009_contract.sql"), [{
    file: "migrations/orders/009_contract.sql",
    line: 4,
    rule: "drop-column",
    message: MIGRATION_LINT_RULES["drop-column"],
  }]);
});

Deno.test("lintMigration() treats only tables the same file created earlier as new", () => {
  assert.deepEqual(rules("create index t_id on t (id); create table t (id int)"), ["index-not-concurrent"]);
  assert.deepEqual(rules(`create table "T" (id int); create index on t (id)`), ["index-not-concurrent"]);
  assert.deepEqual(rules(`create table if not exists app.t (id int); alter table app.t drop column id`), []);
});

Deno.test("lintMigration() is not fooled by keywords inside strings, comments or function bodies", () => {
  assert.deepEqual(rules("insert into notes values ('drop table orders; update orders set x = 1')"), []);
  assert.deepEqual(rules("/* alter table orders drop column x; */ select 1"), []);
  const fn = "create function f() returns void language sql as $$ delete from orders; $$";
  assert.deepEqual(rules(fn), []);
});

Deno.test("lintMigration() honours an override with a reason, for that rule and statement only", () => {
  const sql = [
    "-- lint: allow drop-column (no deployed version reads legacy since 1.4)",
    "alter table orders drop column legacy, alter column total type numeric;",
    "alter table orders drop column other;",
  ].join("\n");
  assert.deepEqual(lintMigration(sql).map((f) => [f.line, f.rule]), [[2, "alter-column-type"], [3, "drop-column"]]);
  const both = "-- lint: allow drop-column (gone)\n-- lint: allow alter-column-type (tiny table)\n" +
    "alter table orders drop column legacy, alter column total type numeric;";
  assert.deepEqual(rules(both), []);
});

Deno.test("lintMigration() refuses an override without a reason, for an unknown rule, or that silences nothing", () => {
  assert.deepEqual(lintMigration("-- lint: allow drop-table\ndrop table orders").map((f) => [f.line, f.rule]), [
    [1, "override-reason"],
    [2, "drop-table"],
  ]);
  assert.deepEqual(rules("-- lint: allow drop-table ( )\ndrop table orders"), ["override-reason", "drop-table"]);
  assert.deepEqual(rules("-- lint: allow drop-everything (why not)\ndrop table orders"), [
    "override-unknown-rule",
    "drop-table",
  ]);
  assert.deepEqual(rules("-- lint: allow override-reason (sneaky)\nselect 1"), ["override-unknown-rule"]);
  assert.deepEqual(rules("-- lint: allow drop-table (stale)\nselect 1"), ["override-unused"]);
  assert.deepEqual(rules("-- lint: allow drop-table (why) and more\ndrop table orders"), [
    "override-reason",
    "drop-table",
  ]);
  assert.deepEqual(rules("-- lint: allow\ndrop table orders"), ["override-unknown-rule", "drop-table"]);
  assert.deepEqual(rules("-- lint is a word here\ndrop table orders"), ["drop-table"]);
});

Deno.test("formatMigrationFinding() prints file:line rule: why", () => {
  const [finding] = lintMigration("cluster orders", "m/001_x.sql");
  assert.equal(formatMigrationFinding(finding), `m/001_x.sql:1 cluster: ${MIGRATION_LINT_RULES.cluster}`);
});

Deno.test("lintMigrationDirectory() lints new files, skips grandfathered ones and flags a grandfathered edit", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/migrations/orders`, { recursive: true });
    const write = (name: string, sql: string) => Deno.writeTextFile(`${root}/migrations/orders/${name}`, sql);
    await write("001_init.sql", "create table orders (id int);");
    await write("002_old_index.sql", "create index orders_id on orders (id);");
    await write("003_old_drop.sql", "alter table orders drop column x;");
    await write("010_new.sql", "\nalter table orders rename to purchases;");
    await write("README.md", "drop table orders;");
    await write("notes.sql", "drop table orders;");
    const checksum = async (name: string) =>
      await migrationChecksum(await Deno.readFile(`${root}/migrations/orders/${name}`));
    const baseline = {
      files: {
        "migrations/orders/002_old_index.sql": await checksum("002_old_index.sql"),
        "migrations/orders/003_old_drop.sql": await checksum("001_init.sql"),
      },
    };
    const findings = await lintMigrationDirectory("./migrations/orders/", { root, baseline });
    assert.deepEqual(findings.map((f) => [f.file, f.line, f.rule]), [
      ["migrations/orders/003_old_drop.sql", 1, "baseline-changed"],
      ["migrations/orders/010_new.sql", 2, "rename-table"],
    ]);
    assert.deepEqual(await findMigrationDirectories(root), ["migrations/orders"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("readMigrationBaseline() reads files → checksums, treats a missing file as empty and refuses junk", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.deepEqual(await readMigrationBaseline(`${dir}/none.json`), { files: {} });
    const files = { "migrations/a/001_x.sql": "ab".repeat(32) };
    await Deno.writeTextFile(`${dir}/ok.json`, JSON.stringify({ files }));
    assert.deepEqual(await readMigrationBaseline(`${dir}/ok.json`), { files });
    await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify({ files: ["migrations/a/001_x.sql"] }));
    await assert.rejects(() => readMigrationBaseline(`${dir}/bad.json`), TypeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
