/**
 * One token of a SQL statement: a `word` (an unquoted keyword or identifier, lower-cased as Postgres folds it), an
 * `identifier` (double-quoted, case kept), a `string` (single-quoted or dollar-quoted; its body), a `number`, a
 * positional `parameter` (`$1`) or a `punct` character.
 *
 * @example Tell a keyword from a quoted identifier
 * ```ts
 * import { splitSqlStatements, type SqlToken } from "./migration_lint_statements.ts";
 * const [statement] = splitSqlStatements(`drop table "Orders"`);
 * const last: SqlToken = statement.tokens.at(-1)!; // { kind: "identifier", value: "Orders", line: 1 }
 * ```
 */
export interface SqlToken {
  kind: "word" | "identifier" | "string" | "number" | "parameter" | "punct";
  value: string;
  /** 1-based line the token starts on. */
  line: number;
}

/**
 * A comment of a migration file, `--` or `/* *\/`, with its text as written.
 *
 * @example Read the comments above a statement
 * ```ts
 * import { splitSqlStatements, type SqlComment } from "./migration_lint_statements.ts";
 * const [statement] = splitSqlStatements("-- why\nselect 1");
 * const comments: SqlComment[] = statement.comments; // [{ text: "-- why", line: 1 }]
 * ```
 */
export interface SqlComment {
  text: string;
  /** 1-based line the comment starts on. */
  line: number;
}

/**
 * One statement of a SQL file, as {@linkcode splitSqlStatements} cut it.
 *
 * @example Where a statement starts
 * ```ts
 * import { splitSqlStatements, type SqlStatement } from "./migration_lint_statements.ts";
 * const statements: SqlStatement[] = splitSqlStatements("select 1;\n\nselect 2;");
 * const lines = statements.map((s) => s.line); // [1, 3]
 * ```
 */
export interface SqlStatement {
  /** The statement's source text, from its first token to its last, without the terminating `;`. */
  text: string;
  /** 1-based line of the statement's first token. */
  line: number;
  tokens: SqlToken[];
  /** The comments between the previous statement's `;` (or the file's start) and this statement's first token. */
  comments: SqlComment[];
}

const WORD_START = /[A-Za-z_\u0080-\uffff]/;
const WORD_PART = /[A-Za-z0-9_$\u0080-\uffff]/;
const DOLLAR_TAG = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

/**
 * Splits SQL source into statements the way Postgres reads them: a `;` ends a statement unless it sits in a string
 * (`'…'`, `E'…'` with backslash escapes, `$tag$…$tag$`), a quoted identifier, a `--` or nested `/* *\/` comment, or a
 * `BEGIN ATOMIC … END` function body. Empty statements are dropped.
 *
 * @example Semicolons inside a function body do not split it
 * ```ts
 * import { splitSqlStatements } from "./migration_lint_statements.ts";
 * const sql = `
 * create function touch() returns trigger language plpgsql as $$
 * begin new.updated_at = now(); return new; end $$;
 * insert into notes values ('a;b'); -- done; really
 * `;
 * const statements = splitSqlStatements(sql); // two statements, on lines 2 and 4
 * if (statements.length !== 2 || statements[1].line !== 4) throw new Error("split wrongly");
 * ```
 */
export function splitSqlStatements(sql: string): SqlStatement[] {
  return new Splitter(sql).run();
}

class Splitter {
  #at = 0;
  #line = 1;
  readonly #statements: SqlStatement[] = [];
  #tokens: SqlToken[] = [];
  #comments: SqlComment[] = [];
  #start = -1;
  #end = -1;
  /** Nesting of `BEGIN ATOMIC` … `END` (with `CASE` … `END` inside it), where `;` does not end the statement. */
  #atomic = 0;

  constructor(readonly sql: string) {}

  run(): SqlStatement[] {
    const sql = this.sql;
    while (this.#at < sql.length) {
      const c = sql[this.#at];
      const next = sql[this.#at + 1];
      if (c === "\n") {
        this.#line++;
        this.#at++;
      } else if (/\s/.test(c)) {
        this.#at++;
      } else if (c === "-" && next === "-") {
        const end = sql.indexOf("\n", this.#at);
        this.#comment(end === -1 ? sql.length : end);
      } else if (c === "/" && next === "*") {
        this.#comment(this.#blockCommentEnd());
      } else if (c === ";") {
        if (this.#atomic > 0) {
          this.#push("punct", this.#at + 1, ";");
        } else {
          this.#finish();
          this.#at++;
        }
      } else if (c === "'") {
        this.#quoted("'", false);
      } else if ((c === "e" || c === "E") && next === "'") {
        this.#at++;
        this.#quoted("'", true);
      } else if (c === '"') {
        this.#quoted('"', false);
      } else if (c === "$" && /[0-9]/.test(next ?? "")) {
        let end = this.#at + 1;
        while (end < sql.length && /[0-9]/.test(sql[end])) end++;
        this.#push("parameter", end, sql.slice(this.#at, end));
      } else if (c === "$" && DOLLAR_TAG.test(sql.slice(this.#at, this.#at + 64))) {
        this.#dollarQuoted();
      } else if (WORD_START.test(c)) {
        let end = this.#at + 1;
        while (end < sql.length && WORD_PART.test(sql[end])) end++;
        this.#word(sql.slice(this.#at, end).toLowerCase(), end);
      } else if (/[0-9]/.test(c) || (c === "." && /[0-9]/.test(next ?? ""))) {
        let end = this.#at + 1;
        while (end < sql.length && /[0-9A-Za-z_.]/.test(sql[end])) end++;
        this.#push("number", end, sql.slice(this.#at, end));
      } else {
        this.#push("punct", this.#at + 1, c);
      }
    }
    this.#finish();
    return this.#statements;
  }

  #word(value: string, end: number): void {
    const previous = this.#tokens.at(-1);
    if (value === "atomic" && previous?.kind === "word" && previous.value === "begin") this.#atomic++;
    else if (this.#atomic > 0 && value === "case") this.#atomic++;
    else if (this.#atomic > 0 && value === "end") this.#atomic--;
    this.#push("word", end, value);
  }

  #push(kind: SqlToken["kind"], end: number, value: string, line = this.#line): void {
    if (this.#tokens.length === 0) this.#start = this.#at;
    this.#tokens.push({ kind, value, line });
    this.#end = end;
    this.#at = end;
  }

  #comment(end: number): void {
    const text = this.sql.slice(this.#at, end);
    const line = this.#line;
    if (this.#tokens.length === 0) this.#comments.push({ text, line });
    this.#line += text.split("\n").length - 1;
    this.#at = end;
  }

  #blockCommentEnd(): number {
    let depth = 0;
    for (let i = this.#at; i < this.sql.length; i++) {
      if (this.sql.startsWith("/*", i)) {
        depth++;
        i++;
      } else if (this.sql.startsWith("*/", i)) {
        depth--;
        i++;
        if (depth === 0) return i + 1;
      }
    }
    return this.sql.length;
  }

  /** A `'…'` string or `"…"` identifier starting at the quote; a doubled quote is one quote character. */
  #quoted(quote: "'" | '"', backslashEscapes: boolean): void {
    const start = this.#at;
    const line = this.#line;
    let value = "";
    let i = start + 1;
    for (; i < this.sql.length; i++) {
      const c = this.sql[i];
      if (backslashEscapes && c === "\\") {
        value += this.sql[++i] ?? "";
      } else if (c === quote && this.sql[i + 1] === quote) {
        value += quote;
        i++;
      } else if (c === quote) {
        break;
      } else {
        value += c;
      }
    }
    this.#line += (this.sql.slice(start, i).match(/\n/g) ?? []).length;
    const kind = quote === "'" ? "string" : "identifier";
    const startAt = backslashEscapes ? start - 1 : start;
    if (this.#tokens.length === 0) this.#start = startAt;
    this.#tokens.push({ kind, value, line });
    this.#end = Math.min(i + 1, this.sql.length);
    this.#at = this.#end;
  }

  #dollarQuoted(): void {
    const tag = DOLLAR_TAG.exec(this.sql.slice(this.#at, this.#at + 64))![0];
    const bodyStart = this.#at + tag.length;
    const close = this.sql.indexOf(tag, bodyStart);
    const end = close === -1 ? this.sql.length : close + tag.length;
    const body = this.sql.slice(bodyStart, close === -1 ? this.sql.length : close);
    const line = this.#line;
    this.#line += (this.sql.slice(this.#at, end).match(/\n/g) ?? []).length;
    this.#push("string", end, body, line);
  }

  #finish(): void {
    if (this.#tokens.length > 0) {
      this.#statements.push({
        text: this.sql.slice(this.#start, this.#end),
        line: this.#tokens[0].line,
        tokens: this.#tokens,
        comments: this.#comments,
      });
      this.#comments = [];
    }
    this.#tokens = [];
    this.#atomic = 0;
  }
}
