import { join } from "node:path";
import { splitSqlStatements, type SqlToken } from "./migration_lint_statements.ts";

export { splitSqlStatements, type SqlComment, type SqlStatement, type SqlToken } from "./migration_lint_statements.ts";

/**
 * Why each rule of {@linkcode lintMigration} flags a statement, by rule id. The `override-*` and `baseline-changed`
 * rules are about the lint's own inputs and cannot be overridden.
 *
 * @example List the rules
 * ```ts
 * import { MIGRATION_LINT_RULES } from "./migration_lint.ts";
 * const help = Object.entries(MIGRATION_LINT_RULES).map(([rule, why]) => `${rule}: ${why}`).join("\n");
 * ```
 */
export const MIGRATION_LINT_RULES = {
  "drop-table": "running versions that still read the table fail; contract only once no deployed version uses it",
  "drop-column": "running versions that still read or write the column fail; contract only once none does",
  "rename-table": "old versions fail on the new name at once; add the new table, copy, switch readers, drop later",
  "rename-column": "old versions fail on the new name at once; add a column, backfill, read both, drop the old later",
  "set-not-null":
    "scans every row under an ACCESS EXCLUSIVE lock; add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL",
  "not-null-column":
    "ADD COLUMN … NOT NULL without DEFAULT fails on rows already there and breaks inserts of running versions",
  "volatile-default":
    "a volatile default (random(), gen_random_uuid(), clock_timestamp(), serial, identity, stored generated) rewrites the table under an ACCESS EXCLUSIVE lock; add the column plain, then set the default and backfill",
  "alter-column-type": "rewrites the table and its indexes under an ACCESS EXCLUSIVE lock; add a new column instead",
  "constraint-not-valid":
    "a CHECK or FOREIGN KEY checks every row while writes are blocked; add it NOT VALID, VALIDATE it in a later migration",
  "index-not-concurrent":
    "building an index without CONCURRENTLY blocks writes to an existing table for the whole build",
  "runs-outside-transaction":
    "migrate() runs each file in one transaction, and Postgres refuses this statement inside a transaction block",
  "transaction-control":
    "migrate() runs each file in one transaction; a COMMIT in it keeps the part before even if the rest fails, unrecorded",
  "vacuum-full": "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock",
  "cluster": "CLUSTER rewrites the table under an ACCESS EXCLUSIVE lock",
  "unbounded-update":
    "an UPDATE without WHERE locks and rewrites every row in one transaction; backfill in batches outside migrate()",
  "unbounded-delete":
    "a DELETE without WHERE locks every row in one transaction; delete in batches outside migrate() (or TRUNCATE)",
  "override-reason":
    "an override reads `-- lint: allow <rule> (reason)`, the reason required; this one is malformed and silences nothing",
  "override-unknown-rule": "the override names no rule of the migration lint",
  "override-unused": "the override silences nothing: its statement does not break that rule",
  "baseline-changed":
    "a grandfathered migration was edited: migrate() refuses it on every database that applied it (checksum)",
} as const;

/**
 * A rule id of {@linkcode MIGRATION_LINT_RULES}.
 *
 * @example Check a rule id read from a comment
 * ```ts
 * import { MIGRATION_LINT_RULES, type MigrationLintRule } from "./migration_lint.ts";
 * const isRule = (id: string): id is MigrationLintRule => Object.hasOwn(MIGRATION_LINT_RULES, id);
 * ```
 */
export type MigrationLintRule = keyof typeof MIGRATION_LINT_RULES;

/**
 * One problem the migration lint found.
 *
 * @example Print a finding
 * ```ts
 * import { formatMigrationFinding, type MigrationFinding } from "./migration_lint.ts";
 * const finding: MigrationFinding = { file: "migrations/orders/004_x.sql", line: 3, rule: "drop-column", message: "…" };
 * console.log(formatMigrationFinding(finding));
 * ```
 */
export interface MigrationFinding {
  file: string;
  /** 1-based line of the statement (or comment) at fault. */
  line: number;
  rule: MigrationLintRule;
  /** One line: why the rule exists. */
  message: string;
}

/**
 * Migrations exempt from the lint because they were applied in production before it existed: repo-relative path
 * (with `/`) → hex SHA-256 of the file's bytes, the checksum `migrate()` records. Grandfathered files are not linted;
 * one whose bytes no longer match is a `baseline-changed` finding, since deployed databases would refuse it.
 *
 * @example A baseline of one file
 * ```ts
 * import type { MigrationBaseline } from "./migration_lint.ts";
 * const baseline: MigrationBaseline = {
 *   files: { "migrations/orders/001_init.sql": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
 * };
 * ```
 */
export interface MigrationBaseline {
  files: Record<string, string>;
}

/**
 * Options for {@linkcode lintMigrationDirectory}.
 *
 * @example Lint against the repository's baseline
 * ```ts
 * import type { LintMigrationDirectoryOptions } from "./migration_lint.ts";
 * const options: LintMigrationDirectoryOptions = { root: ".", baseline: { files: {} } };
 * ```
 */
export interface LintMigrationDirectoryOptions {
  /**
   * Directory the `dir` argument and the baseline's paths are relative to.
   * @default {"."}
   */
  root?: string;
  /**
   * Files exempt from the lint.
   * @default {{ files: {} }}
   */
  baseline?: MigrationBaseline;
}

const OVERRIDE = /^--\s*lint:\s*allow\b\s*([^\s(]*)\s*(?:\((.*)\))?\s*$/;
const MIGRATION_FILE = /^\d+_[^/\\]+\.sql$/;

/**
 * The findings of one migration file's SQL, in statement order. A statement may break a rule on purpose when a
 * comment directly above it says `-- lint: allow <rule-id> (reason)`; one comment per rule, the reason is required.
 * "Existing table" means one the file does not create itself: a table created earlier in the same file is new, so
 * indexing, altering, updating or dropping it is safe.
 *
 * @example Dropping a column is flagged unless overridden with a reason
 * ```ts
 * import { lintMigration } from "./migration_lint.ts";
 * const flagged = lintMigration("alter table orders drop column legacy_ref;", "004_contract.sql");
 * // [{ file: "004_contract.sql", line: 1, rule: "drop-column", message: "running versions that …" }]
 * const allowed = lintMigration(
 *   "-- lint: allow drop-column (no version since 1.4 reads it)\nalter table orders drop column legacy_ref;",
 * );
 * if (flagged.length !== 1 || allowed.length !== 0) throw new Error("lint disagrees");
 * ```
 */
export function lintMigration(sql: string, file = "<sql>"): MigrationFinding[] {
  const findings: MigrationFinding[] = [];
  const created = new Set<string>();
  const finding = (line: number, rule: MigrationLintRule) =>
    findings.push({ file, line, rule, message: MIGRATION_LINT_RULES[rule] });
  for (const statement of splitSqlStatements(sql)) {
    const broken = checkStatement(statement.tokens, created);
    const allowed = new Set<MigrationLintRule>();
    for (const comment of statement.comments) {
      const text = comment.text.trim();
      if (!/^--\s*lint:/.test(text)) continue;
      const match = OVERRIDE.exec(text);
      if (!match) {
        finding(comment.line, "override-reason");
        continue;
      }
      const [, rule, reason] = match;
      if (!Object.hasOwn(MIGRATION_LINT_RULES, rule) || rule.startsWith("override-") || rule === "baseline-changed") {
        finding(comment.line, "override-unknown-rule");
      } else if (!reason?.trim()) {
        finding(comment.line, "override-reason");
      } else if (!broken.has(rule as MigrationLintRule)) {
        finding(comment.line, "override-unused");
      } else {
        allowed.add(rule as MigrationLintRule);
      }
    }
    for (const rule of broken) if (!allowed.has(rule)) finding(statement.line, rule);
  }
  return findings;
}

/**
 * Lints the migration files of `dir` (the `NNN_name.sql` files `migrate()` applies), skipping those the baseline
 * grandfathers, and resolves the findings in file order. Findings name files as `dir/file` relative to `root`.
 *
 * @example Lint a directory with one new, unsafe migration
 * ```ts
 * import { lintMigrationDirectory } from "./migration_lint.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/migrations`);
 * await Deno.writeTextFile(`${root}/migrations/001_init.sql`, "create table t (id int);");
 * await Deno.writeTextFile(`${root}/migrations/002_rename.sql`, "alter table t rename to u;");
 * const findings = await lintMigrationDirectory("migrations", { root });
 * // [{ file: "migrations/002_rename.sql", line: 1, rule: "rename-table", ... }]
 * await Deno.remove(root, { recursive: true });
 * if (findings.length !== 1) throw new Error(`expected one finding, got ${findings.length}`);
 * ```
 */
export async function lintMigrationDirectory(
  dir: string,
  options: LintMigrationDirectoryOptions = {},
): Promise<MigrationFinding[]> {
  const root = options.root ?? ".";
  const baseline = options.baseline?.files ?? {};
  const names: string[] = [];
  for await (const entry of Deno.readDir(join(root, dir))) {
    if (entry.isFile && MIGRATION_FILE.test(entry.name)) names.push(entry.name);
  }
  names.sort((a, b) => parseInt(a) - parseInt(b) || a.localeCompare(b));
  const findings: MigrationFinding[] = [];
  for (const name of names) {
    const file = relativePath(dir, name);
    const bytes = await Deno.readFile(join(root, dir, name));
    const grandfathered = baseline[file];
    if (grandfathered === undefined) {
      findings.push(...lintMigration(new TextDecoder().decode(bytes), file));
    } else if (grandfathered !== await sha256(bytes)) {
      findings.push({ file, line: 1, rule: "baseline-changed", message: MIGRATION_LINT_RULES["baseline-changed"] });
    }
  }
  return findings;
}

/**
 * The directories under `root` that hold migration files (`NNN_name.sql`) and have a `migrations` folder in their
 * path, relative to `root` and sorted; `.git`, `node_modules` and `.trellis` are skipped.
 *
 * @example Find a repository's migration directories
 * ```ts
 * import { findMigrationDirectories } from "./migration_lint.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/migrations/orders`, { recursive: true });
 * await Deno.writeTextFile(`${root}/migrations/orders/001_init.sql`, "create table t (id int);");
 * const dirs = await findMigrationDirectories(root); // ["migrations/orders"]
 * await Deno.remove(root, { recursive: true });
 * if (dirs.join() !== "migrations/orders") throw new Error(`found ${dirs}`);
 * ```
 */
export async function findMigrationDirectories(root = "."): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    let holdsMigrations = false;
    for await (const entry of Deno.readDir(join(root, dir))) {
      if (entry.isDirectory && ![".git", "node_modules", ".trellis"].includes(entry.name)) {
        await walk(relativePath(dir, entry.name));
      } else if (entry.isFile && MIGRATION_FILE.test(entry.name)) {
        holdsMigrations = true;
      }
    }
    if (holdsMigrations && dir.split("/").includes("migrations")) found.push(dir);
  };
  await walk("");
  return found.sort();
}

/**
 * Reads a {@linkcode MigrationBaseline} from a JSON file; a missing file is an empty baseline (everything is linted).
 *
 * @example Read the repository's baseline
 * ```ts
 * import { readMigrationBaseline } from "./migration_lint.ts";
 * const baseline = await readMigrationBaseline("migrations/lint-baseline.json");
 * console.log(Object.keys(baseline.files).length, "grandfathered migrations");
 * ```
 */
export async function readMigrationBaseline(path: string | URL): Promise<MigrationBaseline> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { files: {} };
    throw error;
  }
  const parsed = JSON.parse(text);
  const files = parsed?.files;
  if (
    typeof files !== "object" || files === null || Array.isArray(files) ||
    !Object.values(files).every((sum) => typeof sum === "string" && /^[0-9a-f]{64}$/.test(sum))
  ) {
    throw new TypeError(
      `Cannot read migration baseline as ${path}: current value is not { "files": { path: sha256-hex } }`,
    );
  }
  return { files };
}

/**
 * A finding as one line: `file:line rule: why`.
 *
 * @example Print findings the way the CLI does
 * ```ts
 * import { formatMigrationFinding, lintMigration } from "./migration_lint.ts";
 * for (const finding of lintMigration("vacuum full orders", "005_vacuum.sql")) {
 *   console.log(formatMigrationFinding(finding)); // "005_vacuum.sql:1 vacuum-full: VACUUM FULL rewrites …"
 * }
 * ```
 */
export function formatMigrationFinding(finding: MigrationFinding): string {
  return `${finding.file}:${finding.line} ${finding.rule}: ${finding.message}`;
}

/**
 * The hex SHA-256 of a migration file's bytes, as `migrate()` records it and a {@linkcode MigrationBaseline} holds it.
 *
 * @example Grandfather a file
 * ```ts
 * import { migrationChecksum } from "./migration_lint.ts";
 * const checksum = await migrationChecksum(new TextEncoder().encode("create table t (id int);"));
 * ```
 */
export function migrationChecksum(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  return sha256(bytes);
}

function relativePath(dir: string, name: string): string {
  const base = dir.replace(/^\.\/+/, "").replace(/\/+$/, "");
  return base === "" || base === "." ? name : `${base}/${name}`;
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The rules `tokens` (one statement) breaks; records a table it creates in `created`. */
function checkStatement(tokens: SqlToken[], created: Set<string>): Set<MigrationLintRule> {
  const broken = new Set<MigrationLintRule>();
  const s = new Cursor(tokens);
  const existing = (table: string | undefined) => table !== undefined && !created.has(table);
  const first = s.word(0);

  if (["create", "drop", "reindex", "refresh"].includes(first) && s.topLevelWord("concurrently") >= 0) {
    broken.add("runs-outside-transaction");
  }
  if (
    first === "vacuum" || s.startsWith("create", "database") || s.startsWith("drop", "database") ||
    s.startsWith("alter", "system") || s.startsWith("create", "tablespace") || s.startsWith("drop", "tablespace")
  ) {
    broken.add("runs-outside-transaction");
  }

  if (["begin", "commit", "rollback", "end", "abort"].includes(first) || s.startsWith("start", "transaction")) {
    broken.add("transaction-control");
  }

  if (first === "create") {
    let i = 1;
    if (s.startsWith("create", "or", "replace")) i = 3;
    while (["temp", "temporary", "unlogged", "global", "local"].includes(s.word(i))) i++;
    if (s.word(i) === "table") {
      i++;
      if (s.word(i) === "if") i += 3;
      const table = s.name(i);
      if (table) created.add(table.name);
    } else if (s.word(i) === "unique" || s.word(i) === "index") {
      const on = s.topLevelWord("on");
      let at = on + 1;
      if (s.word(at) === "only") at++;
      if (on >= 0 && s.topLevelWord("concurrently") < 0 && existing(s.name(at)?.name)) {
        broken.add("index-not-concurrent");
      }
    }
  } else if (s.startsWith("drop", "table")) {
    let i = 2;
    if (s.word(i) === "if") i += 2;
    for (const table of s.nameList(i)) if (existing(table)) broken.add("drop-table");
  } else if (s.startsWith("alter", "table")) {
    let i = 2;
    if (s.word(i) === "if") i += 2;
    if (s.word(i) === "only") i++;
    const table = s.name(i);
    if (table && existing(table.name)) checkAlterTable(s, table.next, broken);
  } else if (first === "vacuum") {
    if (s.words().includes("full")) broken.add("vacuum-full");
  } else if (first === "cluster") {
    broken.add("cluster");
  } else if (first === "update" || first === "delete" || first === "with") {
    const verb = first === "with" ? Math.max(s.topLevelWord("update"), s.topLevelWord("delete")) : 0;
    if (verb >= 0) {
      let i = verb + 1;
      if (s.word(verb) === "delete") i++;
      if (s.word(i) === "only") i++;
      const table = s.name(i);
      if (existing(table?.name) && s.topLevelWord("where", verb) < 0) {
        broken.add(s.word(verb) === "update" ? "unbounded-update" : "unbounded-delete");
      }
    }
  }
  return broken;
}

function checkAlterTable(s: Cursor, from: number, broken: Set<MigrationLintRule>): void {
  let i = from;
  if (s.punct(i) === "*") i++;
  if (s.word(i) === "rename") {
    if (s.word(i + 1) === "to") broken.add("rename-table");
    else if (s.word(i + 1) !== "constraint") broken.add("rename-column");
    return;
  }
  for (const action of s.split(i, ",")) {
    const words = (at: number) => action.word(at);
    if (words(0) === "drop") {
      if (words(1) !== "constraint") broken.add("drop-column");
    } else if (words(0) === "alter") {
      const at = words(1) === "column" ? 3 : 2;
      if (words(at) === "type" || (words(at) === "set" && words(at + 1) === "data")) broken.add("alter-column-type");
      if (words(at) === "set" && words(at + 1) === "not" && words(at + 2) === "null") broken.add("set-not-null");
    } else if (words(0) === "add") {
      const kind = words(1) === "constraint" ? words(3) : words(1);
      if (kind === "check" || kind === "foreign") {
        if (!action.hasSequence("not", "valid")) broken.add("constraint-not-valid");
      } else if (kind === "unique" || kind === "primary" || kind === "exclude") {
        if (!action.hasSequence("using", "index")) broken.add("index-not-concurrent");
      } else {
        if (action.hasSequence("not", "null") && action.topLevelWord("default") < 0) broken.add("not-null-column");
        if (action.topLevelWord("check") >= 0 || action.topLevelWord("references") >= 0) {
          broken.add("constraint-not-valid");
        }
        if (rewritesOnAdd(action)) broken.add("volatile-default");
      }
    }
  }
}

const VOLATILE_FUNCTIONS = new Set([
  "random",
  "gen_random_uuid",
  "uuid_generate_v1",
  "uuid_generate_v1mc",
  "uuid_generate_v4",
  "uuidv4",
  "uuidv7",
  "clock_timestamp",
  "timeofday",
  "nextval",
]);
const SERIAL_TYPES = new Set(["serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"]);

/** Whether an `ADD COLUMN` action fills existing rows one by one (a table rewrite) instead of storing one default. */
function rewritesOnAdd(action: Cursor): boolean {
  return action.tokens.some((token, at) =>
    token.kind === "word" &&
    ((VOLATILE_FUNCTIONS.has(token.value) && action.punct(at + 1) === "(") || SERIAL_TYPES.has(token.value))
  ) || action.hasSequence("as", "identity") || (action.topLevelWord("generated") >= 0 && action.hasSequence("stored"));
}

/** Reads a statement's tokens by position; "top level" means outside any parentheses. */
class Cursor {
  constructor(readonly tokens: SqlToken[]) {}

  word(at: number): string {
    const token = this.tokens[at];
    return token?.kind === "word" ? token.value : "";
  }

  punct(at: number): string {
    const token = this.tokens[at];
    return token?.kind === "punct" ? token.value : "";
  }

  words(): string[] {
    return this.tokens.filter((t) => t.kind === "word").map((t) => t.value);
  }

  startsWith(...words: string[]): boolean {
    return words.every((word, at) => this.word(at) === word);
  }

  /** Index of the first top-level `word` at or after `from`, or -1. */
  topLevelWord(word: string, from = 0): number {
    let depth = 0;
    for (let at = 0; at < this.tokens.length; at++) {
      const punct = this.punct(at);
      if (punct === "(" || punct === "[") depth++;
      else if (punct === ")" || punct === "]") depth--;
      else if (depth === 0 && at >= from && this.word(at) === word) return at;
    }
    return -1;
  }

  hasSequence(...words: string[]): boolean {
    return this.tokens.some((_, at) => words.every((word, k) => this.word(at + k) === word));
  }

  /** A possibly schema-qualified name at `at`: its last part, and the index after it. */
  name(at: number): { name: string; next: number } | undefined {
    let i = at;
    let name: string | undefined;
    while (this.tokens[i]?.kind === "word" || this.tokens[i]?.kind === "identifier") {
      name = this.tokens[i].value;
      if (this.punct(i + 1) !== ".") return { name, next: i + 1 };
      i += 2;
    }
    return undefined;
  }

  /** Comma-separated names from `at`. */
  nameList(at: number): string[] {
    const names: string[] = [];
    for (let name = this.name(at); name; name = this.punct(name.next) === "," ? this.name(name.next + 1) : undefined) {
      names.push(name.name);
    }
    return names;
  }

  /** The tokens from `from`, cut at top-level `separator` punctuation. */
  split(from: number, separator: string): Cursor[] {
    const parts: Cursor[] = [];
    let depth = 0;
    let start = from;
    for (let at = from; at <= this.tokens.length; at++) {
      const punct = this.punct(at);
      if (punct === "(") depth++;
      else if (punct === ")") depth--;
      if (at === this.tokens.length || (depth === 0 && punct === separator)) {
        parts.push(new Cursor(this.tokens.slice(start, at)));
        start = at + 1;
      }
    }
    return parts;
  }
}
