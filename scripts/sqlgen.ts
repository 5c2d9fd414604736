/**
 * Type-safe SQL, the sqlc way: named queries in `.sql` files are checked against the real schema and turned into typed
 * functions over the `Database` contract.
 *
 * Every service's SQL lives in `services/<service>/queries.sql` (found by {@linkcode queryFiles}); the generated
 * `services/<service>/queries.ts` beside it is what the service's code imports. For each query file it creates a
 * throwaway database on the `DATABASE_URL` server, applies the outbox migrations and `migrations/<service>/` (the
 * service named by the file's `-- migrations:` header, as `migrateService` does), asks Postgres to describe every
 * statement (a prepared statement's parameter and column types; column nullability from `pg_attribute`), and writes
 * the module. A statement Postgres rejects (a renamed column, a typo) is reported with its file, line and Postgres'
 * message, and the run exits 1.
 *
 *     deno task sqlgen                    # regenerate
 *     deno task sqlgen --check            # exit 1 when a generated file is stale or a statement is rejected
 *
 * Query file syntax:
 *
 *     -- migrations: orders
 *     -- name: getOrder :one              (:one → row | undefined, :many → rows, :exec → void)
 *     -- params: id                       ($1, $2, ... in order; required when the statement has parameters;
 *                                         `name?` for one that may be null)
 *     -- nonnull: db_now                  (optional: result columns Postgres cannot prove non-null, such as an
 *     select *, now() as db_now           expression, that are never null; typed without `| null`)
 *       from orders where id = $1;
 */
import postgres from "postgres";
import { connectPostgres, ensureDatabase, migrate } from "@trellis/platform/db";
import { dropDatabase, uniqueName, urlFor } from "@trellis/platform/db/testing";
import { OUTBOX_MIGRATIONS } from "@trellis/platform/outbox";

const ROOT = new URL("../", import.meta.url);

/** The query files `deno task sqlgen` covers: every `services/<service>/queries.sql`, sorted. */
export async function queryFiles(): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(new URL("services/", ROOT))) {
    if (!entry.isDirectory) continue;
    const path = `services/${entry.name}/queries.sql`;
    if (await Deno.stat(new URL(path, ROOT)).then(() => true, () => false)) found.push(path);
  }
  return found.sort();
}

/** What the caller gets back from a query. */
export type Cardinality = "one" | "many" | "exec";

/** One `-- name:` block of a query file. */
export interface NamedQuery {
  name: string;
  cardinality: Cardinality;
  params: string[];
  /** Parameters that may be null (written `name?` in `-- params:`). */
  nullableParams: string[];
  /** Result columns typed as never null whatever Postgres can prove (`-- nonnull:`). */
  nonNull: string[];
  sql: string;
  /** 1-based line of the statement's first line in its file. */
  line: number;
}

/** A parsed query file. */
export interface QueryFile {
  /** Path relative to the repository root. */
  path: string;
  /** The service whose migrations define the schema (`migrations/<service>/`). */
  service: string;
  queries: NamedQuery[];
}

/** A result column as Postgres describes it. */
export interface Column {
  name: string;
  oid: number;
  nullable: boolean;
}

/** A query with the types Postgres gave its parameters and columns. */
export interface DescribedQuery extends NamedQuery {
  paramOids: number[];
  columns: Column[];
}

/** A statement Postgres would not prepare. */
export interface RejectedQuery {
  /** `path:line`, the line being where Postgres points when it says. */
  where: string;
  name: string;
  message: string;
}

const HEADER = /^--\s*migrations:\s*([a-z0-9_-]+)\s*$/;
const NAME = /^--\s*name:\s*([A-Za-z_][A-Za-z0-9_]*)\s+:(one|many|exec)\s*$/;
const PARAMS = /^--\s*params:\s*(.*)$/;
const NONNULL = /^--\s*nonnull:\s*(.*)$/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Parses a query file; throws a SyntaxError naming the line on a malformed block. */
export function parseQueryFile(path: string, text: string): QueryFile {
  const lines = text.split("\n");
  let service: string | undefined;
  const queries: NamedQuery[] = [];
  let current:
    | {
      name: string;
      cardinality: Cardinality;
      params: string[];
      nullableParams: string[];
      nonNull: string[];
      body: string[];
      line: number;
    }
    | undefined;
  const finish = () => {
    if (!current) return;
    const sql = current.body.join("\n").trim().replace(/;\s*$/, "");
    if (sql === "") throw new SyntaxError(`${path}:${current.line}: query ${current.name} has no statement`);
    queries.push({
      name: current.name,
      cardinality: current.cardinality,
      params: current.params,
      nullableParams: current.nullableParams,
      nonNull: current.nonNull,
      sql,
      line: current.line,
    });
  };
  lines.forEach((raw, i) => {
    const line = raw.trim();
    const header = HEADER.exec(line);
    const name = NAME.exec(line);
    const params = PARAMS.exec(line);
    const nonNull = NONNULL.exec(line);
    if (header) {
      service = header[1];
    } else if (name) {
      finish();
      if (queries.some((q) => q.name === name[1])) throw new SyntaxError(`${path}:${i + 1}: query ${name[1]} twice`);
      current = {
        name: name[1],
        cardinality: name[2] as Cardinality,
        params: [],
        nullableParams: [],
        nonNull: [],
        body: [],
        line: i + 2,
      };
    } else if (params && current && current.body.length === 0) {
      const written = params[1].split(",").map((p) => p.trim()).filter((p) => p !== "");
      current.params = written.map((p) => p.replace(/\?$/, ""));
      current.nullableParams = written.filter((p) => p.endsWith("?")).map((p) => p.slice(0, -1));
      const bad = current.params.find((p) => !IDENT.test(p));
      if (bad !== undefined) throw new SyntaxError(`${path}:${i + 1}: parameter name ${JSON.stringify(bad)}`);
      current.line = i + 2;
    } else if (nonNull && current && current.body.length === 0) {
      current.nonNull = nonNull[1].split(",").map((p) => p.trim()).filter((p) => p !== "");
      current.line = i + 2;
    } else if (current) {
      // A statement ends at its `;`: comments and blank lines after it introduce the next query, not this one.
      const ended = current.body.length > 0 && current.body.at(-1)!.trimEnd().endsWith(";");
      if (ended && (line === "" || line.startsWith("--"))) return;
      if (current.body.length === 0 && line === "") current.line = i + 2;
      else current.body.push(raw);
    } else if (line !== "" && !line.startsWith("--")) {
      throw new SyntaxError(`${path}:${i + 1}: statement before any "-- name:" line`);
    }
  });
  finish();
  if (service === undefined) throw new SyntaxError(`${path}: missing "-- migrations: <service>" header`);
  return { path, service, queries };
}

/**
 * Describes every query of `file` in a fresh database holding the service's schema. `afterMigrations` runs once the
 * migrations are applied (a test uses it to rename a column).
 */
export async function describeQueries(
  file: QueryFile,
  options: { afterMigrations?: string } = {},
): Promise<{ described: DescribedQuery[]; rejected: RejectedQuery[] }> {
  const name = uniqueName();
  const url = urlFor(name);
  await ensureDatabase(url);
  try {
    const db = connectPostgres(url, { max: 1, applicationName: "trellis-sqlgen" });
    try {
      await migrate(db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
      await migrate(db, new URL(`migrations/${file.service}`, ROOT));
      if (options.afterMigrations) await db.query(options.afterMigrations);
    } finally {
      await db.close();
    }
    // The Database contract runs statements; describing one (Parse + Describe without Execute) needs the driver.
    const sql = postgres(url, { max: 1, onnotice: () => {} });
    try {
      return await describeAll(sql, file);
    } finally {
      await sql.end();
    }
  } finally {
    await dropDatabase(name);
  }
}

async function describeAll(
  sql: postgres.Sql,
  file: QueryFile,
): Promise<{ described: DescribedQuery[]; rejected: RejectedQuery[] }> {
  const described: DescribedQuery[] = [];
  const rejected: RejectedQuery[] = [];
  for (const q of file.queries) {
    try {
      const d = await sql.unsafe(q.sql).describe();
      if (d.types.length !== q.params.length) {
        rejected.push({
          where: `${file.path}:${q.line}`,
          name: q.name,
          message: `has ${d.types.length} parameter(s) but "-- params:" names ${q.params.length}`,
        });
        continue;
      }
      const unknown = q.nonNull.filter((n) => !d.columns.some((c) => c.name === n));
      if (unknown.length > 0) {
        rejected.push({
          where: `${file.path}:${q.line}`,
          name: q.name,
          message: `"-- nonnull:" names ${unknown.join(", ")}, not a result column`,
        });
        continue;
      }
      const notNull = await notNullColumns(sql, d.columns.map((c) => c.table).filter((t) => t !== 0));
      described.push({
        ...q,
        paramOids: d.types,
        columns: d.columns.map((c) => ({
          name: c.name,
          oid: c.type,
          nullable: !(q.nonNull.includes(c.name) || (c.table !== 0 && notNull.has(`${c.table}.${c.number}`))),
        })),
      });
    } catch (e) {
      if (!(e instanceof postgres.PostgresError)) throw e;
      const at = Number(e.position);
      const line = q.line + (at > 0 ? q.sql.slice(0, at - 1).split("\n").length - 1 : 0);
      rejected.push({ where: `${file.path}:${line}`, name: q.name, message: e.message });
    }
  }
  return { described, rejected };
}

async function notNullColumns(sql: postgres.Sql, tables: number[]): Promise<Set<string>> {
  if (tables.length === 0) return new Set();
  const rows = await sql.unsafe<{ rel: number; num: number }[]>(
    "select attrelid::int as rel, attnum::int as num from pg_attribute where attrelid = any($1::oid[]) and attnotnull",
    [[...new Set(tables)]],
  );
  return new Set(rows.map((r) => `${r.rel}.${r.num}`));
}

// What each adapter of the Database contract returns (int8 and numeric as strings, json parsed), and what it accepts.
const RESULT_TYPES: Record<number, string> = {
  16: "boolean",
  17: "Uint8Array",
  18: "string",
  19: "string",
  20: "string",
  21: "number",
  23: "number",
  25: "string",
  26: "number",
  114: "unknown",
  700: "number",
  701: "number",
  1000: "boolean[]",
  1007: "number[]",
  1009: "string[]",
  1016: "string[]",
  1042: "string",
  1043: "string",
  1082: "Date",
  1114: "Date",
  1184: "Date",
  1700: "string",
  2950: "string",
  3802: "unknown",
};
const PARAM_TYPES: Record<number, string> = {
  ...RESULT_TYPES,
  20: "string | number | bigint",
  1016: "(string | number | bigint)[]",
  1082: "Date | string",
  1114: "Date | string",
  1184: "Date | string",
  1700: "string | number",
};

const pascal = (name: string) => name[0].toUpperCase() + name.slice(1);
const constant = (name: string) => name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
const property = (name: string) => IDENT.test(name) ? name : JSON.stringify(name);

/** The TypeScript module for `file`'s described queries (unformatted; {@linkcode generate} runs `deno fmt`). */
export function emit(file: QueryFile, described: DescribedQuery[]): string {
  const out = [
    `// Generated by \`deno task sqlgen\` (scripts/sqlgen.ts) from ${file.path} against migrations/${file.service}; do not edit.`,
    `import type { Queryable, QueryOptions } from "@trellis/platform/db";`,
  ];
  for (const q of described) {
    const row = `${pascal(q.name)}Row`;
    const text = `${constant(q.name)}_SQL`;
    const params = q.params.map((p, i) => {
      const type = PARAM_TYPES[q.paramOids[i]] ?? "unknown";
      return `${property(p)}: ${q.nullableParams.includes(p) && type !== "unknown" ? `${type} | null` : type}`;
    });
    const typed = q.columns.length > 0 && q.cardinality !== "exec";
    const args = q.params.map((p) => IDENT.test(p) ? `params.${p}` : `params[${JSON.stringify(p)}]`);
    const signature = [
      "q: Queryable",
      ...(q.params.length > 0 ? [`params: { ${params.join("; ")} }`] : []),
      "options?: QueryOptions",
    ].join(", ");
    out.push("");
    out.push(`const ${text} = ${JSON.stringify(q.sql)};`);
    if (typed) {
      out.push("", `/** A row of \`${q.name}\`. */`, `export type ${row} = {`);
      for (const c of q.columns) {
        const type = RESULT_TYPES[c.oid] ?? "unknown";
        out.push(`  ${property(c.name)}: ${c.nullable && type !== "unknown" ? `${type} | null` : type};`);
      }
      out.push("};");
    }
    const call = `q.query${typed ? `<${row}>` : ""}(${text}, [${args.join(", ")}], options)`;
    out.push("", `/** Runs \`${q.name}\` (${file.path}:${q.line}). */`);
    if (q.cardinality === "one") {
      const result = typed ? `${row} | undefined` : "Record<string, unknown> | undefined";
      out.push(`export async function ${q.name}(${signature}): Promise<${result}> {`);
      out.push(`  const [row] = await ${call};`, "  return row;", "}");
    } else if (q.cardinality === "many") {
      const result = typed ? `${row}[]` : "Record<string, unknown>[]";
      out.push(`export async function ${q.name}(${signature}): Promise<${result}> {`);
      out.push(`  return await ${call};`, "}");
    } else {
      out.push(`export async function ${q.name}(${signature}): Promise<void> {`);
      out.push(`  await ${call};`, "}");
    }
  }
  return out.join("\n") + "\n";
}

async function format(code: string): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--ext=ts", "-"],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(code));
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  if (!success) throw new Error(`deno fmt rejected generated code: ${new TextDecoder().decode(stderr)}`);
  return new TextDecoder().decode(stdout);
}

/** Where the module generated from a query file goes: `x.sql` → `x.ts`, beside it. */
export function outputPath(path: string): string {
  return path.replace(/\.sql$/, ".ts");
}

/** What one run found. */
export interface GenerateResult {
  /** Generated files whose content differs from what is on disk (written unless `check`). */
  stale: string[];
  rejected: RejectedQuery[];
}

/**
 * Generates the module of each query file (paths relative to the repository root). With `check`, writes nothing and
 * reports stale files instead. Nothing is written for a file with a rejected statement.
 */
export async function generate(paths: readonly string[], options: { check?: boolean } = {}): Promise<GenerateResult> {
  // Each file has its own throwaway database, so they are described side by side; results keep the order of `paths`.
  const outcomes = await Promise.all(paths.map(async (path) => {
    const file = parseQueryFile(path, await Deno.readTextFile(new URL(path, ROOT)));
    const { described, rejected } = await describeQueries(file);
    if (rejected.length > 0) return { rejected, stale: false };
    const code = await format(emit(file, described));
    const target = new URL(outputPath(path), ROOT);
    const current = await Deno.readTextFile(target).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    });
    if (current === code) return { rejected, stale: false };
    if (!options.check) await Deno.writeTextFile(target, code);
    return { rejected, stale: true };
  }));
  return {
    stale: paths.filter((_, i) => outcomes[i].stale).map(outputPath),
    rejected: outcomes.flatMap((o) => o.rejected),
  };
}

if (import.meta.main) {
  const check = Deno.args.includes("--check");
  const paths = Deno.args.filter((a) => a !== "--check");
  const { stale, rejected } = await generate(paths.length > 0 ? paths : await queryFiles(), { check });
  for (const r of rejected) console.error(`${r.where}: query ${r.name}: Postgres rejects it: ${r.message}`);
  for (const s of stale) console.error(check ? `${s} is stale: run deno task sqlgen` : `wrote ${s}`);
  if (rejected.length > 0 || (check && stale.length > 0)) Deno.exit(1);
}
