import { trace } from "@opentelemetry/api";
import { inSpan, SpanKind, tracingEnabled } from "./spans.ts";

/**
 * The span name of a SQL statement: its operation and main table (`SELECT orders`, `INSERT outbox`), or the operation
 * alone (`BEGIN`, `SELECT`); never its parameters or literals.
 *
 * @example Name a query's span
 * ```ts
 * import { sqlSpanName } from "./sql.ts";
 * sqlSpanName("select id from orders where id = $1"); // "SELECT orders"
 * sqlSpanName("insert into outbox (id) values ($1)"); // "INSERT outbox"
 * ```
 */
export function sqlSpanName(text: string): string {
  let name = names.get(text);
  if (name === undefined) {
    name = nameOf(text);
    if (names.size >= 1000) names.clear(); // statements are a fixed set in practice; this bounds a generated one
    names.set(text, name);
  }
  return name;
}

const names = new Map<string, string>();
const TABLE_AFTER: Record<string, RegExp> = {
  SELECT: /\bfrom\s+("?[\w.]+"?)/i,
  DELETE: /\bfrom\s+("?[\w.]+"?)/i,
  INSERT: /\binto\s+("?[\w.]+"?)/i,
  UPDATE: /^\s*update\s+(?:only\s+)?("?[\w.]+"?)/i,
};

function nameOf(text: string): string {
  const body = text.replace(/^\s*(--[^\n]*\n\s*)*/, "");
  let operation = /^\s*(\w+)/.exec(body)?.[1]?.toUpperCase() ?? "SQL";
  let scan = body;
  if (operation === "WITH") {
    // The statement after the CTEs: the last top-level verb is what the query does.
    const verbs = [...body.matchAll(/\)\s*(select|insert|update|delete)\b/gi)];
    const last = verbs.at(-1);
    if (last) {
      operation = last[1].toUpperCase();
      scan = body.slice(last.index! + 1);
    }
  }
  const table = TABLE_AFTER[operation]?.exec(scan)?.[1]?.replaceAll('"', "");
  return table && !table.startsWith("$") ? `${operation} ${table}` : operation;
}

/**
 * Runs a query `fn` inside a CLIENT span named {@linkcode sqlSpanName} with `db.system` and `db.operation.name`,
 * but only inside a trace: a statement with no active span (a poll, a migration) records nothing, so background
 * loops do not fill the trace store. With tracing off it calls `fn`.
 *
 * @example Trace a statement sent through a driver
 * ```ts
 * import { querySpan } from "./sql.ts";
 * const rows = await querySpan("postgresql", "select 1", async () => [{ "?column?": 1 }]);
 * ```
 */
export function querySpan<T>(system: string, text: string, fn: () => Promise<T>): Promise<T> {
  if (!tracingEnabled || trace.getActiveSpan() === undefined) return fn();
  const name = sqlSpanName(text);
  const operation = name.split(" ")[0];
  return inSpan(name, {
    kind: SpanKind.CLIENT,
    attributes: { "db.system": system, "db.operation.name": operation, "db.query.summary": name },
  }, fn);
}
