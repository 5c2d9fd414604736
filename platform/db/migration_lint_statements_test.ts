import assert from "node:assert/strict";
import { splitSqlStatements } from "./migration_lint_statements.ts";

const texts = (sql: string) => splitSqlStatements(sql).map((s) => s.text);

Deno.test("splitSqlStatements() cuts at semicolons and drops empty statements", () => {
  assert.deepEqual(texts("select 1;select 2 ;;\n select 3"), ["select 1", "select 2", "select 3"]);
  assert.deepEqual(texts("  ;\n-- only a comment\n"), []);
});

Deno.test("splitSqlStatements() does not split at a semicolon inside a string, E-string or quoted identifier", () => {
  assert.deepEqual(texts(`insert into t values ('a;b', 'it''s; fine');select 2`), [
    `insert into t values ('a;b', 'it''s; fine')`,
    "select 2",
  ]);
  assert.deepEqual(texts(`select E'x\\';y';select 2`), [`select E'x\\';y'`, "select 2"]);
  assert.deepEqual(texts(`select 'a\\';select 2`), [`select 'a\\'`, "select 2"]);
  assert.deepEqual(texts(`select 1 as "a;""b";select 2`), [`select 1 as "a;""b"`, "select 2"]);
  const [insert] = splitSqlStatements(`insert into t values ('it''s')`);
  assert.deepEqual(insert.tokens.at(-2), { kind: "string", value: "it's", line: 1 });
});

Deno.test("splitSqlStatements() does not split inside dollar-quoted bodies, tagged or not", () => {
  const sql = [
    "create function f() returns int language plpgsql as $$ begin perform 1; return 2; end $$;",
    "create function g() returns text language sql as $body$ select 'x;$$;y' $body$;",
    "select $1::int;",
  ].join("\n");
  const statements = splitSqlStatements(sql);
  assert.equal(statements.length, 3);
  assert.deepEqual(statements.map((s) => s.line), [1, 2, 3]);
  assert.equal(statements[1].tokens.find((t) => t.kind === "string")?.value, " select 'x;$$;y' ");
  assert.deepEqual(statements[2].tokens[1], { kind: "parameter", value: "$1", line: 3 });
});

Deno.test("splitSqlStatements() does not split at semicolons in line or nested block comments", () => {
  const sql = "select 1 -- not; here\n/* nor; /* nested; */ here; */ + 1;\nselect 2";
  assert.deepEqual(texts(sql), ["select 1 -- not; here\n/* nor; /* nested; */ here; */ + 1", "select 2"]);
});

Deno.test("splitSqlStatements() keeps a BEGIN ATOMIC function body, CASE included, in one statement", () => {
  const sql = [
    "create function h(x int) returns int begin atomic",
    "  select case when x > 0 then 1 else 0 end;",
    "  select 2;",
    "end;",
    "select 3;",
  ].join("\n");
  const statements = splitSqlStatements(sql);
  assert.equal(statements.length, 2);
  assert.equal(statements[1].text, "select 3");
  assert.equal(statements[1].line, 5);
});

Deno.test("splitSqlStatements() gives each statement its first line and the comments above it", () => {
  const sql = [
    "-- header",
    "create table t (id int);",
    "",
    "/* two",
    "   lines */",
    "-- lint: allow drop-table (gone)",
    "drop",
    "  table t;",
    "-- trailing, above nothing",
  ].join("\n");
  const [create, drop] = splitSqlStatements(sql);
  assert.equal(create.line, 2);
  assert.deepEqual(create.comments, [{ text: "-- header", line: 1 }]);
  assert.equal(drop.line, 7);
  assert.equal(drop.text, "drop\n  table t");
  assert.deepEqual(drop.comments, [
    { text: "/* two\n   lines */", line: 4 },
    { text: "-- lint: allow drop-table (gone)", line: 6 },
  ]);
});

Deno.test("splitSqlStatements() counts lines inside multi-line strings and dollar quotes", () => {
  const sql = "insert into t values ('a\nb');\nselect $$\n;\n$$;\nselect 'end'";
  assert.deepEqual(splitSqlStatements(sql).map((s) => s.line), [1, 3, 6]);
});

Deno.test("splitSqlStatements() lower-cases words and keeps quoted identifiers as written", () => {
  const [statement] = splitSqlStatements(`ALTER TABLE "Orders" DROP COLUMN Legacy`);
  assert.deepEqual(statement.tokens.map((t) => [t.kind, t.value]), [
    ["word", "alter"],
    ["word", "table"],
    ["identifier", "Orders"],
    ["word", "drop"],
    ["word", "column"],
    ["word", "legacy"],
  ]);
});
