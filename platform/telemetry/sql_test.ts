import assert from "node:assert/strict";
import { sqlSpanName } from "./sql.ts";

Deno.test("sqlSpanName() names a statement by operation and table and never by its values", () => {
  const cases: [string, string][] = [
    ["select id, status from orders where id = $1", "SELECT orders"],
    ["  insert into outbox (id, topic) values ($1, $2)", "INSERT outbox"],
    ["update orders set status = 'CONFIRMED' where id = $1", "UPDATE orders"],
    ["delete from inbox where seen_at < $1", "DELETE inbox"],
    ['select * from "orders_v2"', "SELECT orders_v2"],
    ["with due as (select id from orders) update orders set x = 1 from due", "UPDATE orders"],
    ["select pg_notify($1, '')", "SELECT"],
    ["begin", "BEGIN"],
    ["-- a comment\nselect 1 from stock", "SELECT stock"],
  ];
  for (const [text, name] of cases) assert.equal(sqlSpanName(text), name, text);
});
