import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { databaseMetrics } from "./metrics.ts";
import { freshDatabase } from "./testing/mod.ts";

/** The value of the sample of `text` named `name` whose labels include `labels`, or undefined. */
function sample(text: string, name: string, labels = ""): number | undefined {
  const line = text.split("\n").find((l) =>
    (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(labels)
  );
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

Deno.test("databaseMetrics() times statements by operation, counts failures by kind and reports the Postgres pool", async () => {
  await using fx = await freshDatabase();
  const registry = new Registry();
  const db = databaseMetrics(registry, fx.db);
  await db.query("create table t (id int primary key)");
  await db.query("insert into t values ($1)", [1]);
  await assert.rejects(db.query("insert into t values ($1)", [1]));
  await db.transaction(async (tx) => {
    await tx.query("select * from t where id = $1", [1]);
    await tx.savepoint((sp) => sp.query("update t set id = 2 where id = 1"));
    const during = await registry.metrics();
    assert.equal(sample(during, "db_client_connections_in_use"), 1, "the transaction holds a connection");
    assert.equal(sample(during, "db_client_connections_max"), 4);
  });
  const text = await registry.metrics();
  assert.equal(sample(text, "db_client_operation_duration_seconds_count", 'operation="insert"'), 2);
  assert.equal(sample(text, "db_client_operation_duration_seconds_count", 'operation="select"'), 1);
  assert.equal(sample(text, "db_client_operation_duration_seconds_count", 'operation="update"'), 1);
  assert.equal(sample(text, "db_client_operation_duration_seconds_count", 'operation="other"'), 1);
  assert.equal(sample(text, "db_client_errors_total", 'operation="insert",kind="statement"'), 1);
  assert.equal(sample(text, "db_client_connections_in_use"), 0);
  assert.equal(sample(text, "db_client_connections_waiting"), 0);
  assert.ok(!text.includes("where id") && !text.includes("into t"), "statement text reached a label");
});
