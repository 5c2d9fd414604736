import assert from "node:assert/strict";
import { connectPostgres, ensureDatabase } from "./postgres.ts";
import { DatabaseUnavailableError } from "./errors.ts";
import { BASE_URL, databaseConformance, dropDatabase, freshDatabase, uniqueName, urlFor } from "./testing/mod.ts";
import { waitUntil, within } from "../testing/mod.ts";

databaseConformance("postgres", freshDatabase);

Deno.test("ensureDatabase() creates a missing database once, even when called concurrently", async () => {
  const name = uniqueName();
  try {
    const created = await Promise.all([ensureDatabase(urlFor(name)), ensureDatabase(urlFor(name))]);
    assert.equal(created.filter(Boolean).length <= 1, true);
    assert.equal(await ensureDatabase(urlFor(name)), false);
    const db = connectPostgres(urlFor(name));
    try {
      const [row] = await db.query("select current_database() as name");
      assert.equal(row.name, name);
    } finally {
      await db.close();
    }
  } finally {
    await dropDatabase(name);
  }
});

Deno.test("connectPostgres() reports its application name to the server", async () => {
  const db = connectPostgres(BASE_URL, { applicationName: "trellis-probe" });
  try {
    const [row] = await db.query("select current_setting('application_name') as name");
    assert.equal(row.name, "trellis-probe");
  } finally {
    await db.close();
  }
});

Deno.test("connectPostgres() rejects a non-positive max with a RangeError", () => {
  assert.throws(() => connectPostgres(BASE_URL, { max: 0 }), RangeError);
});

Deno.test("ping() rejects when the server cannot be reached within the connect timeout", async () => {
  const db = connectPostgres("postgres://postgres@127.0.0.1:1/postgres", { connectTimeout: 1_000 });
  try {
    await assert.rejects(db.ping());
  } finally {
    await db.close();
  }
});

Deno.test("connectPostgres() turns on TCP keepalive after keepAliveMs of idle time on its pooled connections", async () => {
  assert.throws(() => connectPostgres(BASE_URL, { keepAliveMs: 10 }), RangeError);
  const db = connectPostgres(BASE_URL, { max: 1, keepAliveMs: 3_000 });
  try {
    const [{ port }] = await db.query<{ port: number }>("select inet_client_port() as port");
    // The kernel's own view of the socket: `timer:(keepalive,<seconds left>...)`, at most the idle time asked for.
    const out = await within(
      new Deno.Command("ss", { args: ["-tno", "state", "established", `( sport = :${port} )`] }).output(),
      5_000,
      "ss to list the connection",
    );
    const timer = new TextDecoder().decode(out.stdout).match(/timer:\(keepalive,([\d.]+)(ms|sec)/);
    assert.ok(timer, `no keepalive timer on the connection from port ${port}`);
    const seconds = Number(timer[1]) / (timer[2] === "ms" ? 1000 : 1);
    assert.ok(seconds > 0 && seconds <= 3, `keepalive fires in ${seconds} s`);
  } finally {
    await db.close();
  }
});

Deno.test("a savepoint whose connection is terminated rejects with DatabaseUnavailableError, and the pool recovers", async () => {
  await using fx = await freshDatabase();
  await fx.db.query("create table ledger (id int)");
  let inner: Promise<unknown> | undefined;
  await assert.rejects(
    within(
      fx.db.transaction(async (tx) => {
        await tx.query("insert into ledger values (1)");
        inner = tx.savepoint(async (sp) => {
          await sp.query("insert into ledger values (2)");
          await sp.query("select pg_terminate_backend(pg_backend_pid())");
        });
        await inner;
      }),
      5_000,
      "the transaction on a terminated connection",
    ),
    DatabaseUnavailableError,
  );
  await assert.rejects(within(inner!, 5_000, "the savepoint on a terminated connection"), DatabaseUnavailableError);
  await waitUntil(
    async () => (await fx.db.query("select count(*)::int as n from ledger").catch(() => [{ n: -1 }]))[0].n === 0,
    5_000,
    "the pool to answer again, with nothing committed",
    50,
  );
});
