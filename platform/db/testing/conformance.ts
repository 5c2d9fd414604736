import assert from "node:assert/strict";
import { runWithContext } from "../../context/mod.ts";
import type { Database, Tx } from "../db.ts";
import { migrate } from "../migrate.ts";
import { waitUntil, within } from "../../testing/mod.ts";

/**
 * A fresh, isolated database for one conformance case; disposing it closes every handle and drops the storage.
 *
 * @example A fixture over an existing database
 * ```ts
 * import type { Database, Tx } from "../db.ts";
 * import type { DatabaseFixture } from "./conformance.ts";
 * const fixtureOf = (db: Database): DatabaseFixture => ({
 *   db,
 *   reopen: () => db,
 *   [Symbol.asyncDispose]: () => db.close(),
 * });
 * ```
 */
export interface DatabaseFixture extends AsyncDisposable {
  /** A database no other case uses. */
  db: Database;
  /** Another handle on the same storage (another pool, another view), as a second replica would hold. */
  reopen(): Database;
}

/**
 * Makes one {@linkcode DatabaseFixture} per call.
 *
 * @example Fresh Postgres databases as the suite's factory
 * ```ts
 * import type { DatabaseFactory } from "./conformance.ts";
 * import { freshDatabase } from "./fresh_postgres.ts";
 * const factory: DatabaseFactory = freshDatabase;
 * ```
 */
export type DatabaseFactory = () => Promise<DatabaseFixture>;

/**
 * Options for {@linkcode databaseConformance}.
 *
 * @example PGlite keeps a timer across cases
 * ```ts
 * import type { ConformanceOptions } from "./conformance.ts";
 * const options: ConformanceOptions = { sanitizeOps: false, sanitizeResources: false };
 * ```
 */
export interface ConformanceOptions {
  /**
   * Whether Deno's op sanitizer checks each case. Turn it off only for an engine that keeps timers of its own across
   * cases (PGlite's runtime arms a 10 s statistics-flush timer on first activity and keeps it until it fires).
   * @default {true}
   */
  sanitizeOps?: boolean;
  /**
   * Whether Deno's resource sanitizer checks each case (in Deno 2.9 it also tracks timers; see `sanitizeOps`).
   * @default {true}
   */
  sanitizeResources?: boolean;
}

/**
 * Registers the {@linkcode Database} conformance cases with `Deno.test`, each named `"<name>: <sentence>"` and each on
 * fresh fixtures from `factory`. Every adapter runs this same suite.
 *
 * @example Run the suite against an adapter
 * ```ts ignore
 * import { databaseConformance } from "./conformance.ts";
 * import { createPglite } from "../pglite.ts";
 * const shared = await createPglite();
 * databaseConformance("pglite", async () => {
 *   const schema = `t_${crypto.randomUUID().replaceAll("-", "")}`;
 *   const views = [shared.database(schema)];
 *   return {
 *     db: views[0],
 *     reopen: () => views[views.push(shared.database(schema)) - 1],
 *     [Symbol.asyncDispose]: async () => void await Promise.all(views.map((view) => view.close())),
 *   };
 * });
 * ```
 */
export function databaseConformance(
  name: string,
  factory: DatabaseFactory,
  options: ConformanceOptions = {},
): void {
  const { sanitizeOps = true, sanitizeResources = true } = options;
  const test = (sentence: string, fn: (fixture: DatabaseFixture) => Promise<void>) =>
    Deno.test({
      name: `${name}: ${sentence}`,
      sanitizeOps,
      sanitizeResources,
      fn: async () => {
        await using fixture = await factory();
        await fn(fixture);
      },
    });

  test("query() round-trips text, int, int8 as string, bool, jsonb, timestamptz, bytea and null", async ({ db }) => {
    await db.query(
      "create table samples (t text, i int, big int8, ok bool, doc jsonb, at timestamptz, raw bytea, nothing text)",
    );
    const at = new Date("2024-05-06T07:08:09.123Z");
    const raw = new Uint8Array([0, 1, 254, 255]);
    const doc = { id: "o-1", items: [{ sku: "a", qty: 2 }], paid: false };
    await db.query("insert into samples values ($1, $2, $3, $4, $5, $6, $7, $8)", [
      "héllo 'quoted'",
      42,
      "9007199254740993",
      true,
      doc,
      at,
      raw,
      null,
    ]);
    const [row] = await db.query("select * from samples");
    assert.equal(row.t, "héllo 'quoted'");
    assert.equal(row.i, 42);
    assert.equal(row.big, "9007199254740993");
    assert.equal(row.ok, true);
    assert.deepEqual(row.doc, doc);
    assert.ok(row.at instanceof Date);
    assert.equal(row.at.getTime(), at.getTime());
    assert.ok(row.raw instanceof Uint8Array);
    assert.deepEqual(new Uint8Array(row.raw), raw);
    assert.equal(row.nothing, null);
  });

  test("query() returns computed int8 and numeric as strings", async ({ db }) => {
    const [row] = await db.query("select count(*) as n, $1::int8 * 2 as doubled, 1.50::numeric as price", ["21"]);
    assert.deepEqual({ ...row }, { n: "1", doubled: "42", price: "1.50" });
  });

  test("query() without params runs several statements and returns the last one's rows", async ({ db }) => {
    const rows = await db.query("create table a (x int); insert into a values (1), (2); select x from a order by x");
    assert.deepEqual(rows.map((row) => row.x), [1, 2]);
  });

  test("query() rejects with the server's SQLSTATE in error.code", async ({ db }) => {
    await db.query("create table uniq (id int primary key)");
    await db.query("insert into uniq values (1)");
    await assert.rejects(db.query("insert into uniq values ($1)", [1]), (error: { code?: string }) => {
      assert.equal(error.code, "23505");
      return true;
    });
  });

  test("transaction() commits when fn resolves and returns fn's value", async ({ db }) => {
    await db.query("create table ledger (id int)");
    const result = await db.transaction(async (tx) => {
      await tx.query("insert into ledger values ($1)", [1]);
      await tx.query("insert into ledger values ($1)", [2]);
      return "done";
    });
    assert.equal(result, "done");
    const rows = await db.query("select id from ledger order by id");
    assert.deepEqual(rows.map((row) => row.id), [1, 2]);
  });

  test("transaction() rolls back and rethrows when fn throws", async ({ db }) => {
    await db.query("create table ledger (id int)");
    const boom = new Error("boom");
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query("insert into ledger values ($1)", [1]);
        throw boom;
      }),
      (error) => error === boom,
    );
    assert.deepEqual(await db.query("select id from ledger"), []);
  });

  test("transaction() rolls back and rethrows when a statement fails", async ({ db }) => {
    await db.query("create table ledger (id int primary key)");
    await assert.rejects(db.transaction(async (tx) => {
      await tx.query("insert into ledger values ($1)", [1]);
      await tx.query("insert into ledger values ($1)", [1]);
    }));
    assert.deepEqual(await db.query("select id from ledger"), []);
  });

  test("a transaction's handle rejects queries once the transaction has ended", async ({ db }) => {
    let leaked: { query(text: string): Promise<unknown> } | undefined;
    await db.transaction((tx) => Promise.resolve(void (leaked = tx)));
    await assert.rejects(leaked!.query("select 1"));
  });

  const ids = async (db: Database) => (await db.query("select id from ledger order by id")).map((row) => row.id);

  test("savepoint() rolls back only its own work when fn throws and rethrows; the transaction commits the rest", async ({ db }) => {
    await db.query("create table ledger (id int primary key)");
    const boom = new Error("inner");
    const outcome = await db.transaction(async (tx) => {
      await tx.query("insert into ledger values (1)");
      await assert.rejects(
        tx.savepoint(async (sp) => {
          await sp.query("insert into ledger values (2)");
          throw boom;
        }),
        (error) => error === boom,
      );
      const kept = await tx.savepoint(async (sp) => {
        await sp.query("insert into ledger values (3)");
        return "kept";
      });
      await tx.query("insert into ledger values (4)");
      return kept;
    });
    assert.equal(outcome, "kept");
    assert.deepEqual(await ids(db), [1, 3, 4]);
  });

  test("savepoint() undoes a failed statement, and the transaction goes on after it", async ({ db }) => {
    await db.query("create table ledger (id int primary key)");
    await db.transaction(async (tx) => {
      await tx.query("insert into ledger values (1)");
      await assert.rejects(
        tx.savepoint((sp) => sp.query("insert into ledger values (1)")),
        (error) => (error as { code?: string }).code === "23505",
      );
      await tx.query("insert into ledger values (2)");
    });
    assert.deepEqual(await ids(db), [1, 2]);
  });

  test("savepoint() with a failed statement that fn caught still rolls back and rejects", async ({ db }) => {
    await db.query("create table ledger (id int primary key)");
    await db.transaction(async (tx) => {
      await tx.query("insert into ledger values (1)");
      await assert.rejects(tx.savepoint(async (sp) => {
        await sp.query("insert into ledger values (2)");
        await sp.query("insert into ledger values (1)").catch(() => {});
        return "swallowed";
      }));
      await tx.query("insert into ledger values (3)");
    });
    assert.deepEqual(await ids(db), [1, 3]);
  });

  test("savepoints nest three deep; a failure at depth 3 keeps depths 1 and 2", async ({ db }) => {
    await db.query("create table ledger (id int primary key)");
    await db.transaction(async (tx) => {
      await tx.savepoint(async (one) => {
        await one.query("insert into ledger values (1)");
        await one.savepoint(async (two) => {
          await two.query("insert into ledger values (2)");
          await assert.rejects(two.savepoint(async (three) => {
            await three.query("insert into ledger values (3)");
            throw new Error("depth 3");
          }));
          await two.savepoint((three) => three.query("insert into ledger values (33)"));
        });
        await assert.rejects(one.savepoint(async (two) => {
          await two.savepoint((three) => three.query("insert into ledger values (4)"));
          throw new Error("depth 2, after depth 3 was released");
        }));
      });
    });
    assert.deepEqual(await ids(db), [1, 2, 33]);
  });

  test("a handle that rolled back to a savepoint can open another one, again and again", async ({ db }) => {
    await db.query("create table ledger (id int primary key)");
    await db.transaction(async (tx) => {
      for (let round = 1; round <= 3; round++) {
        await assert.rejects(tx.savepoint(async (sp) => {
          await sp.query("insert into ledger values ($1)", [round]);
          await sp.query("select 1 / 0");
        }));
        await tx.savepoint((sp) => sp.query("insert into ledger values ($1)", [round * 10]));
      }
    });
    assert.deepEqual(await ids(db), [10, 20, 30]);
  });

  test("a failing transaction rolls back released savepoints too", async ({ db }) => {
    await db.query("create table ledger (id int primary key)");
    const boom = new Error("outer");
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query("insert into ledger values (1)");
        await tx.savepoint(async (sp) => {
          await sp.query("insert into ledger values (2)");
          await sp.savepoint((inner) => inner.query("insert into ledger values (3)"));
        });
        throw boom;
      }),
      (error) => error === boom,
    );
    assert.deepEqual(await ids(db), []);
  });

  test("a savepoint handle rejects use after its callback ended, and outer handles while it is open", async ({ db }) => {
    await db.query("create table ledger (id int primary key)");
    let leaked: Tx | undefined;
    let leakedTx: Tx | undefined;
    await db.transaction(async (tx) => {
      leakedTx = tx;
      await tx.savepoint(async (sp) => {
        leaked = sp;
        await assert.rejects(tx.query("insert into ledger values (1)"), /use the savepoint's handle/);
        await assert.rejects(tx.savepoint(() => Promise.resolve()), /use the savepoint's handle/);
        await sp.query("insert into ledger values (2)");
      });
      await assert.rejects(leaked!.query("insert into ledger values (3)"), /savepoint sp_1 has ended/);
      await assert.rejects(leaked!.savepoint(() => Promise.resolve()), /savepoint sp_1 has ended/);
      await tx.query("insert into ledger values (4)");
    });
    await assert.rejects(leakedTx!.savepoint(() => Promise.resolve()), /the transaction has ended/);
    await assert.rejects(leaked!.query("select 1"), /has ended/);
    assert.deepEqual(await ids(db), [2, 4]);
  });

  test("a transaction whose fn resolves while a savepoint is still open rolls back", async ({ db }) => {
    await db.query("create table ledger (id int primary key)");
    const { promise: opened, resolve: markOpened } = Promise.withResolvers<void>();
    const { promise: finish, resolve: letFinish } = Promise.withResolvers<void>();
    let dangling: Promise<unknown> | undefined;
    await assert.rejects(
      db.transaction(async (tx) => {
        dangling = tx.savepoint(async (sp) => {
          await sp.query("insert into ledger values (1)");
          markOpened();
          await within(finish, 5_000, "the test to let the savepoint finish");
        });
        await within(opened, 5_000, "the savepoint to open");
      }),
      /Cannot commit while savepoint sp_1 is open/,
    );
    letFinish();
    await assert.rejects(within(dangling!, 5_000, "the dangling savepoint to settle"));
    assert.deepEqual(await ids(db), []);
  });

  test("pg_notify() inside a transaction reaches listen() only after commit", async ({ db, reopen }) => {
    const received: string[] = [];
    const arrived = Promise.withResolvers<void>();
    const unlisten = await db.listen("order_events", (payload) => {
      received.push(payload);
      arrived.resolve();
    });
    await reopen().transaction(async (tx) => {
      await tx.query("select pg_notify($1, $2)", ["order_events", "o-1"]);
      await delay(50);
      assert.deepEqual(received, [], "delivered before commit");
    });
    await within(arrived.promise, 5_000, "the notification sent in the committed transaction");
    assert.deepEqual(received, ["o-1"]);
    await unlisten();
  });

  test("pg_notify() inside a rolled-back transaction is never delivered", async ({ db, reopen }) => {
    const received: string[] = [];
    const arrived = Promise.withResolvers<void>();
    const unlisten = await db.listen("order_events", (payload) => {
      received.push(payload);
      if (payload === "kept") arrived.resolve();
    });
    const other = reopen();
    await assert.rejects(other.transaction(async (tx) => {
      await tx.query("select pg_notify($1, $2)", ["order_events", "lost"]);
      throw new Error("roll back");
    }));
    await other.transaction(async (tx) => void await tx.query("select pg_notify($1, $2)", ["order_events", "kept"]));
    await within(arrived.promise, 5_000, "the notification from the committed transaction");
    assert.deepEqual(received, ["kept"]);
    await unlisten();
  });

  test("unlisten() stops delivery to that callback only and is idempotent", async ({ db }) => {
    const first: string[] = [];
    const second = Promise.withResolvers<string>();
    const stopFirst = await db.listen("events", (payload) => first.push(payload));
    const stopSecond = await db.listen("events", (payload) => second.resolve(payload));
    await stopFirst();
    await stopFirst();
    await db.query("select pg_notify($1, $2)", ["events", "after"]);
    assert.equal(await within(second.promise, 5_000, "the notification to the listener still subscribed"), "after");
    assert.deepEqual(first, []);
    await stopSecond();
  });

  test("listen() calls onListen once before it resolves, and not again after unlisten()", async ({ db, reopen }) => {
    let listened = 0;
    const received = Promise.withResolvers<string>();
    const unlisten = await db.listen("events", (payload) => received.resolve(payload), () => listened++);
    assert.equal(listened, 1);
    await reopen().query("select pg_notify($1, $2)", ["events", "after listen"]);
    assert.equal(
      await within(received.promise, 5_000, "the notification sent after listen() resolved"),
      "after listen",
    );
    await unlisten();
    const again = await db.listen("events", () => {});
    assert.equal(listened, 1);
    await again();
  });

  test("two databases from the factory share neither tables nor notification channels", async ({ db }) => {
    await using other = await factory();
    await db.query("create table items (name text)");
    await other.db.query("create table items (name text)");
    await db.query("insert into items values ($1)", ["mine"]);
    await other.db.query("insert into items values ($1)", ["theirs"]);
    assert.deepEqual(await db.query("select name from items"), [{ name: "mine" }]);
    assert.deepEqual(await other.db.query("select name from items"), [{ name: "theirs" }]);

    const mine: string[] = [];
    const theirs = Promise.withResolvers<string>();
    const stopMine = await db.listen("events", (payload) => mine.push(payload));
    const stopTheirs = await other.db.listen("events", (payload) => theirs.resolve(payload));
    await other.db.query("select pg_notify($1, $2)", ["events", "for them"]);
    assert.equal(await within(theirs.promise, 5_000, "the notification on the other database"), "for them");
    await delay(50);
    assert.deepEqual(mine, []);
    await stopMine();
    await stopTheirs();
  });

  test("migrate() applies files in version order, logs each and is a no-op on rerun", async ({ db }) => {
    await using dir = await migrationDir({
      "002_add_total.sql": "alter table orders add column total int8 not null default 0;",
      "010_index.sql": "create index orders_total on orders (total);\ninsert into orders (id) values ('seed');",
      "001_orders.sql": "create table orders (id text primary key);",
      "README.md": "not a migration",
    });
    const lines: string[] = [];
    const applied = await migrate(db, dir.path, { onApplied: (line) => lines.push(line) });
    assert.deepEqual(applied.map((m) => [m.version, m.name]), [[1, "orders"], [2, "add_total"], [10, "index"]]);
    assert.equal(lines.length, 3);
    assert.match(lines[0], /001_orders\.sql/);
    assert.deepEqual(await db.query("select id, total from orders"), [{ id: "seed", total: "0" }]);
    const recorded = await db.query("select version, name, checksum, applied_at from schema_migrations order by 1");
    assert.deepEqual(recorded.map((row) => row.version), ["1", "2", "10"]);
    assert.equal(recorded[0].checksum, applied[0].checksum);
    assert.ok(recorded[0].applied_at instanceof Date);
    assert.deepEqual(await migrate(db, dir.path), []);
  });

  test("migrate() rejects a changed checksum of an applied file, naming the file", async ({ db }) => {
    await using dir = await migrationDir({ "001_orders.sql": "create table orders (id text primary key);" });
    await migrate(db, dir.path);
    await Deno.writeTextFile(`${dir.path}/001_orders.sql`, "create table orders (id int primary key);");
    await Deno.writeTextFile(`${dir.path}/002_more.sql`, "create table more (id int);");
    await assert.rejects(migrate(db, dir.path), /001_orders\.sql/);
    const [row] = await db.query("select to_regclass('more') is null as missing");
    assert.equal(row.missing, true);
  });

  test("two concurrent migrate() calls apply each file exactly once", async ({ db, reopen }) => {
    const files: Record<string, string> = {};
    for (let i = 1; i <= 8; i++) {
      files[`${String(i).padStart(3, "0")}_step.sql`] = `create table step_${i} (id int); insert into step_${
        i - 1 || 1
      } values (${i});`;
    }
    await using dir = await migrationDir(files);
    const [a, b] = await Promise.all([migrate(db, dir.path), migrate(reopen(), dir.path)]);
    const versions = [...a, ...b].map((m) => m.version).sort((x, y) => x - y);
    assert.deepEqual(versions, [1, 2, 3, 4, 5, 6, 7, 8]);
    const [count] = await db.query("select count(*) as n from schema_migrations");
    assert.equal(count.n, "8");
  });

  test("ping() resolves on a live database and rejects with the signal's reason when aborted", async ({ db }) => {
    await db.ping();
    await db.ping(AbortSignal.timeout(5_000));
    const reason = new Error("gave up");
    await assert.rejects(db.ping(AbortSignal.abort(reason)), (error) => error === reason);
  });

  test("query() and transaction() reject with an aborted signal's reason, the current context's too", async ({ db }) => {
    await db.query("create table ledger (id int)");
    const reason = new Error("gave up");
    const signal = AbortSignal.abort(reason);
    await assert.rejects(db.query("insert into ledger values (1)", [], { signal }), (error) => error === reason);
    await assert.rejects(
      db.transaction((tx) => tx.query("insert into ledger values (2)"), { signal }),
      (e) => e === reason,
    );
    await assert.rejects(
      runWithContext({ requestId: "r-1", signal }, () => db.query("insert into ledger values (3)")),
      (error) => error === reason,
    );
    assert.deepEqual(await db.query("select id from ledger"), []);
  });

  test("a transaction whose signal aborts between statements rejects with the reason and rolls back", async ({ db }) => {
    await db.query("create table ledger (id int)");
    const controller = new AbortController();
    const reason = new Error("deadline");
    let second: Promise<unknown> | undefined;
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query("insert into ledger values (1)");
        controller.abort(reason);
        second = tx.query("insert into ledger values (2)");
        await within(second, 2_000, "the statement after the abort to settle");
      }, { signal: controller.signal }),
      (error) => error === reason,
    );
    await assert.rejects(
      within(second!, 2_000, "the statement after the abort to reject"),
      (error) => error === reason,
    );
    await waitUntil(
      async () => (await db.query("select id from ledger")).length === 0,
      2_000,
      "the aborted transaction to roll back",
      20,
    );
  });

  test("a transaction whose signal aborts inside a savepoint rejects with the reason and rolls back", async ({ db }) => {
    await db.query("create table ledger (id int)");
    const controller = new AbortController();
    const reason = new Error("deadline");
    let inner: Promise<unknown> | undefined;
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query("insert into ledger values (1)");
        inner = tx.savepoint(async (sp) => {
          await sp.query("insert into ledger values (2)");
          controller.abort(reason);
          await sp.query("insert into ledger values (3)");
        });
        await within(inner, 2_000, "the savepoint after the abort to settle");
      }, { signal: controller.signal }),
      (error) => error === reason,
    );
    await assert.rejects(within(inner!, 2_000, "the savepoint after the abort to reject"), (error) => error === reason);
    await waitUntil(
      async () => (await db.query("select id from ledger")).length === 0,
      2_000,
      "the aborted transaction to roll back",
      20,
    );
  });

  test("close() is idempotent and later queries reject", async ({ db }) => {
    await db.close();
    await db.close();
    await assert.rejects(db.query("select 1"));
  });
}

interface TempDir extends AsyncDisposable {
  path: string;
}

async function migrationDir(files: Record<string, string>): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix: "trellis_migrate_" });
  for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(`${path}/${name}`, text);
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
