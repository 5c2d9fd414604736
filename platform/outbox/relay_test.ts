import assert from "node:assert/strict";
import { delay } from "../async/mod.ts";
import { connectPostgres, createPglite, type Database, migrate } from "../db/mod.ts";
import { freshDatabase } from "../db/testing/mod.ts";
import { createLogger, type Logger } from "../log/mod.ts";
import { startPostgres, waitUntil, within } from "../testing/mod.ts";
import { enqueue, OUTBOX_MIGRATIONS } from "./enqueue.ts";
import { type PendingMessage, startRelay } from "./relay.ts";

const log = createLogger("outbox-test", { write: () => {} });
const text = (m: PendingMessage) => JSON.parse(new TextDecoder().decode(m.payload));
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

async function outboxDb() {
  const fixture = await freshDatabase();
  await migrate(fixture.db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
  return fixture;
}

/** Resolves once `n` distinct messages were published (a retried batch may publish some twice). */
function collector(n: number, fail?: (m: PendingMessage) => boolean) {
  const got: PendingMessage[] = [];
  let done!: () => void;
  const all = new Promise<void>((r) => done = r);
  return {
    got,
    all,
    publish: (m: PendingMessage) => {
      if (fail?.(m)) return Promise.reject(new Error("broker down"));
      got.push(m);
      if (new Set(got.map((g) => g.id)).size === n) done();
      return Promise.resolve();
    },
  };
}

async function insertAndEnqueue(db: Database, n: number, rollback = false) {
  await db.transaction(async (tx) => {
    for (let i = 0; i < n; i++) await enqueue(tx, { topic: "t", key: "k", payload: json({ i }) });
    if (rollback) throw new Error("rolled back");
  }).catch((err) => {
    if (!rollback) throw err;
  });
}

Deno.test("startRelay() publishes committed outbox rows in order, woken by NOTIFY, and marks them published", async () => {
  await using f = await outboxDb();
  const c = collector(5);
  const relay = await startRelay(f.db, { publish: c.publish, logger: log, pollMs: 60_000 });
  try {
    await insertAndEnqueue(f.db, 5);
    await within(c.all, 10_000, "the five committed rows published");
    assert.deepEqual(c.got.map((m) => text(m).i), [0, 1, 2, 3, 4]);
    assert.equal(c.got[0].topic, "t");
    assert.equal(c.got[0].key, "k");
    await relay.stop();
    const [row] = await f.db.query<{ n: string }>("select count(*) as n from outbox where published_at is null");
    assert.equal(row.n, "0");
  } finally {
    await relay.stop();
  }
});

Deno.test("enqueue() in a rolled-back transaction publishes nothing", async () => {
  await using f = await outboxDb();
  const c = collector(1);
  const relay = await startRelay(f.db, { publish: c.publish, logger: log, pollMs: 50 });
  try {
    await insertAndEnqueue(f.db, 3, true);
    await insertAndEnqueue(f.db, 1);
    await within(c.all, 10_000, "the committed row published");
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(c.got.length, 1);
  } finally {
    await relay.stop();
  }
});

Deno.test("startRelay() retries a failed publish once its topic's backoff expires, without skipping, reordering or waiting for the safety sweep", async () => {
  await using f = await outboxDb();
  let failures = 2;
  const c = collector(3, (m) => text(m).i === 1 && failures-- > 0);
  const relay = await startRelay(f.db, { publish: c.publish, logger: log, pollMs: 60_000 });
  try {
    const started = Date.now();
    await insertAndEnqueue(f.db, 3);
    await waitUntil(() => c.got.length === 3, 3_000, "three rows with the middle one failing twice");
    // Row 0 was marked with the batch whose row 1 failed, so nothing is published twice.
    assert.deepEqual(c.got.map((m) => text(m).i), [0, 1, 2]);
    const ms = Date.now() - started;
    assert.ok(ms < 1_000, `two backoffs (100 and 200 ms, jittered) took ${ms} ms`);
  } finally {
    await relay.stop();
  }
});

/** Enqueues `n` rows of `topic` in one transaction, spread round-robin over `keys` keys; `i` counts per topic. */
async function enqueueSpread(db: Database, topic: string, n: number, keys: number) {
  await db.transaction(async (tx) => {
    for (let i = 0; i < n; i++) await enqueue(tx, { topic, key: `${topic}-k${i % keys}`, payload: json({ i }) });
  });
}

/** {@linkcode enqueueSpread} retried until the database takes it (the pool fails fast for a while after an outage). */
async function enqueueOnceUp(db: Database, topic: string, n: number) {
  await waitUntil(() => enqueueSpread(db, topic, n, 1).then(() => true, () => false), 10_000, `enqueueing ${topic}`);
}

/** Writes rows straight into the table, without the NOTIFY that `enqueue` sends. */
async function insertSilently(db: Database, topic: string, n: number) {
  for (let i = 0; i < n; i++) {
    await db.query("insert into outbox (id, topic, key, payload) values (gen_random_uuid(), $1, 'k', $2)", [
      topic,
      JSON.stringify({ i }),
    ]);
  }
}

/** Publishes that resolved, in the order they resolved. */
function recorder() {
  const ok: PendingMessage[] = [];
  return {
    ok,
    count: (topic: string) => ok.filter((m) => m.topic === topic).length,
    /** Per key, the payload counters in publish order. */
    byKey(topic: string) {
      const keys = new Map<string, number[]>();
      for (const m of ok.filter((m) => m.topic === topic)) keys.set(m.key!, [...keys.get(m.key!) ?? [], text(m).i]);
      return keys;
    },
    assertEachOnce(n: number) {
      assert.equal(ok.length, n, "every row published exactly once");
      assert.equal(new Set(ok.map((m) => m.id)).size, n);
    },
  };
}

/** A logger that keeps every line, debug included, as parsed JSON. */
function capturingLog(): { log: Logger; lines: { level: string; msg: string; [k: string]: unknown }[] } {
  const lines: { level: string; msg: string }[] = [];
  return { lines, log: createLogger("outbox-test", { level: "debug", write: (line) => lines.push(JSON.parse(line)) }) };
}

function unpublished(db: Database): Promise<number> {
  return db.query<{ n: string }>("select count(*) as n from outbox where published_at is null").then(([r]) =>
    Number(r.n)
  );
}

Deno.test("startRelay() keeps publishing topic B while topic A fails, then publishes A's rows in seq order per key once A recovers", async () => {
  await using f = await outboxDb();
  let aDown = true;
  let aAttempts = 0;
  const r = recorder();
  const relay = await startRelay(f.db, {
    logger: log,
    batchSize: 10,
    pollMs: 60_000,
    publish: (m) => {
      if (m.topic === "A" && aDown) {
        aAttempts++;
        return Promise.reject(new Error("nats down"));
      }
      r.ok.push(m);
      return Promise.resolve();
    },
  });
  try {
    // A's backlog comes first in seq order and is twenty batches long: B must not wait behind it.
    await enqueueSpread(f.db, "A", 200, 4);
    const bStarted = Date.now();
    await enqueueSpread(f.db, "B", 30, 3);
    await waitUntil(() => r.count("B") === 30, 3_000, "all of B's rows while A fails");
    const bMs = Date.now() - bStarted;
    assert.ok(bMs < 1_000, `B's 30 rows took ${bMs} ms behind a failing A`);
    assert.equal(r.count("A"), 0);

    await delay(1_000);
    const failing = await relay.status();
    assert.deepEqual(failing.failingTopics, ["A"]);
    assert.equal(failing.backlog, 200);
    assert.equal(failing.databaseReachable, true);
    assert.equal(failing.lastError?.topic, "A");
    assert.equal(failing.lastError?.message, "nats down");
    // Backed off (100 ms doubling, jittered) and one failure per key stops the rest of the batch's A rows: a handful
    // of attempts per second, not one per row per batch.
    assert.ok(aAttempts >= 4 && aAttempts <= 40, `A was attempted ${aAttempts} times in ~1 s`);

    aDown = false;
    await waitUntil(() => r.count("A") === 200, 10_000, "all of A's rows after A recovered");
    for (const [key, order] of r.byKey("A")) {
      assert.deepEqual(order, [...order].sort((x, y) => x - y), `order of ${key}`);
      assert.equal(order.length, 50);
    }
    r.assertEachOnce(230);
    await waitUntil(async () => (await unpublished(f.db)) === 0, 2_000, "every row marked published");
    const recovered = await relay.status();
    assert.deepEqual(recovered.failingTopics, []);
    assert.equal(recovered.backlog, 0);
  } finally {
    await relay.stop();
  }
});

Deno.test("startRelay() publishes keys concurrently and keeps each key's rows in seq order", async () => {
  await using f = await outboxDb();
  const r = recorder();
  let inFlight = 0;
  let maxInFlight = 0;
  const relay = await startRelay(f.db, {
    logger: log,
    batchSize: 50,
    concurrency: 8,
    pollMs: 60_000,
    publish: async (m) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await delay(Math.random() * 4);
      inFlight--;
      r.ok.push(m);
    },
  });
  try {
    await f.db.transaction(async (tx) => {
      for (let i = 0; i < 25; i++) {
        for (let k = 0; k < 20; k++) await enqueue(tx, { topic: `T${k % 2}`, key: `k${k}`, payload: json({ i }) });
      }
    });
    await waitUntil(() => r.ok.length >= 500, 15_000, "500 rows");
    for (const topic of ["T0", "T1"]) {
      const keys = r.byKey(topic);
      assert.equal(keys.size, 10);
      for (const [key, order] of keys) {
        assert.deepEqual(order, Array.from({ length: 25 }, (_, i) => i), `order of ${topic}/${key}`);
      }
    }
    r.assertEachOnce(500);
    assert.ok(maxInFlight > 1, `publishes never overlapped (max in flight ${maxInFlight})`);
    assert.ok(maxInFlight <= 8, `more than concurrency publishes at once (${maxInFlight})`);
  } finally {
    await relay.stop();
  }
});

Deno.test("two relays on one database keep each key's rows in seq order between them", async () => {
  await using f = await outboxDb();
  const r = recorder();
  const publish = async (m: PendingMessage) => {
    await delay(Math.random() * 3);
    r.ok.push(m);
  };
  const relays = await Promise.all(
    [f.db, f.reopen()].map((db) => startRelay(db, { logger: log, batchSize: 20, pollMs: 60_000, publish })),
  );
  try {
    for (let round = 0; round < 3; round++) {
      await f.db.transaction(async (tx) => {
        for (let i = round * 10; i < round * 10 + 10; i++) {
          for (let k = 0; k < 10; k++) await enqueue(tx, { topic: "t", key: `k${k}`, payload: json({ i }) });
        }
      });
    }
    await waitUntil(() => r.ok.length >= 300, 15_000, "300 rows");
    for (const [key, order] of r.byKey("t")) {
      assert.deepEqual(order, Array.from({ length: 30 }, (_, i) => i), `order of ${key}`);
    }
    r.assertEachOnce(300);
  } finally {
    await Promise.all(relays.map((relay) => relay.stop()));
  }
});

Deno.test("startRelay() publishes a row whose NOTIFY never came within one safety-sweep interval", async () => {
  await using f = await outboxDb();
  const r = recorder();
  const relay = await startRelay(f.db, {
    logger: log,
    pollMs: 400,
    publish: (m) => Promise.resolve(void r.ok.push(m)),
  });
  try {
    await insertAndEnqueue(f.db, 1);
    await waitUntil(() => r.ok.length === 1, 3_000, "the notified row");
    const started = Date.now();
    await insertSilently(f.db, "silent", 3);
    await waitUntil(() => r.count("silent") === 3, 3_000, "the rows written without NOTIFY");
    const ms = Date.now() - started;
    assert.ok(ms < 400 + 600, `rows without NOTIFY took ${ms} ms with a 400 ms safety sweep`);
  } finally {
    await relay.stop();
  }
});

Deno.test("startRelay() survives Postgres being SIGKILLed and restarted, sweeping as soon as its LISTEN is back", async () => {
  await using pg = await startPostgres();
  const db = connectPostgres(pg.url, { max: 2, connectTimeout: 2_000 });
  const r = recorder();
  let relay: Awaited<ReturnType<typeof startRelay>> | undefined;
  try {
    await migrate(db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
    // The safety sweep is far beyond the test's waits: only a NOTIFY or a (re)established LISTEN can wake the relay.
    relay = await startRelay(db, { logger: log, pollMs: 60_000, publish: (m) => Promise.resolve(void r.ok.push(m)) });
    await enqueueSpread(db, "before", 3, 1);
    await waitUntil(() => r.count("before") === 3, 5_000, "rows before the kill");
    await delay(300); // lets any sweep already triggered finish, so the next rows are left to the restart

    // Written without NOTIFY, as if the notification had been lost with the connection: nothing wakes the relay.
    await insertSilently(db, "unnoticed", 5);
    await delay(300);
    assert.equal(r.count("unnoticed"), 0, "rows without NOTIFY were published before any sweep trigger");

    await pg.kill();
    await pg.start();
    const restarted = Date.now();
    await waitUntil(() => r.count("unnoticed") === 5, 20_000, "the unnoticed rows after the restart");
    const sweptMs = Date.now() - restarted;

    await enqueueOnceUp(db, "after", 3);
    await waitUntil(() => r.count("after") === 3, 10_000, "rows enqueued after the restart");
    assert.ok(sweptMs < 15_000, `the re-LISTEN sweep came ${sweptMs} ms after the restart`);
    r.assertEachOnce(11);
    assert.equal((await relay.status()).databaseReachable, true);
  } finally {
    await relay?.stop();
    await db.close();
  }
});

Deno.test("startRelay() backs off while Postgres is down, warns once for the outage and resumes by itself", async () => {
  await using pg = await startPostgres();
  const db = connectPostgres(pg.url, { max: 2, connectTimeout: 2_000 });
  const captured = capturingLog();
  const r = recorder();
  let relay: Awaited<ReturnType<typeof startRelay>> | undefined;
  try {
    await migrate(db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
    relay = await startRelay(db, {
      logger: captured.log,
      pollMs: 100,
      baseDelayMs: 50,
      maxDelayMs: 400,
      publish: (m) => Promise.resolve(void r.ok.push(m)),
    });
    await enqueueSpread(db, "before", 2, 1);
    await waitUntil(() => r.count("before") === 2, 5_000, "rows before the kill");

    await pg.kill();
    await waitUntil(async () => !(await relay!.status()).databaseReachable, 5_000, "the relay to notice the outage");
    await delay(1_500);
    const down = await relay.status();
    assert.equal(down.databaseReachable, false);
    assert.equal(down.backlog, undefined);
    assert.equal(down.lastError?.topic, undefined);
    assert.ok(down.lastError?.message);
    const sweepWarnings = () => captured.lines.filter((l) => l.msg.startsWith("outbox relay cannot reach"));
    const retries = captured.lines.filter((l) => l.msg.startsWith("outbox relay still cannot reach")).length;
    assert.equal(sweepWarnings().length, 1);
    assert.equal(sweepWarnings()[0].level, "warn");
    // 50 ms doubling to 400 ms, jittered: a few retries in 1.5 s, not a storm and not a give-up.
    assert.ok(retries >= 2 && retries <= 30, `${retries} retries in ~1.5 s`);

    await pg.start();
    await enqueueOnceUp(db, "after", 2);
    await waitUntil(() => r.count("after") === 2, 10_000, "rows after the restart");
    await waitUntil(async () => (await relay!.status()).databaseReachable, 5_000, "the relay to see the database");
    assert.equal(captured.lines.filter((l) => l.msg === "outbox relay reached the database again").length, 1);
    assert.equal(sweepWarnings().length, 1);
    r.assertEachOnce(4);
  } finally {
    await relay?.stop();
    await db.close();
  }
});

Deno.test("startRelay() commits a batch without a publish slower than stallMs and marks that row once it resolves", async () => {
  await using f = await outboxDb();
  const r = recorder();
  const slow = Promise.withResolvers<void>();
  let slowCalls = 0;
  const relay = await startRelay(f.db, {
    logger: log,
    pollMs: 60_000,
    stallMs: 200,
    publish: async (m) => {
      if (m.topic === "slow" && text(m).i === 0) {
        slowCalls++;
        await within(slow.promise, 30_000, "the test to resolve the stalled publish");
      }
      r.ok.push(m);
    },
  });
  const markedOf = async (topic: string) =>
    Number(
      (await f.db.query<{ n: string }>(
        "select count(*) as n from outbox where topic = $1 and published_at is not null",
        [topic],
      ))[0].n,
    );
  try {
    await enqueueSpread(f.db, "slow", 3, 1);
    await enqueueSpread(f.db, "fast", 5, 1);
    await waitUntil(async () => (await markedOf("fast")) === 5, 3_000, "the fast topic marked while slow hangs");
    assert.equal(r.count("slow"), 0, "a row behind the hanging one of its key was published");
    assert.deepEqual((await relay.status()).failingTopics, ["slow"]);
    // Committed batches go on for the other topics.
    await enqueueSpread(f.db, "fast", 5, 1);
    await waitUntil(async () => (await markedOf("fast")) === 10, 3_000, "fast rows enqueued during the stall");

    slow.resolve();
    await waitUntil(async () => (await markedOf("slow")) === 3, 3_000, "the slow topic after its publish resolved");
    assert.deepEqual(r.byKey("slow").get("slow-k0"), [0, 1, 2]);
    assert.equal(slowCalls, 1, "the stalled row was published again");
    r.assertEachOnce(13);
    assert.deepEqual((await relay.status()).failingTopics, []);
  } finally {
    slow.resolve();
    await relay.stop();
  }
});

Deno.test("startRelay() backs a failing topic off and recovers on the embedded PGlite adapter too", async () => {
  await using pglite = await createPglite();
  const db = pglite.database("outbox_test");
  await migrate(db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
  let aDown = true;
  const r = recorder();
  const relay = await startRelay(db, {
    logger: log,
    pollMs: 60_000,
    publish: (m) => m.topic === "A" && aDown ? Promise.reject(new Error("down")) : Promise.resolve(void r.ok.push(m)),
  });
  try {
    await enqueueSpread(db, "A", 6, 2);
    await enqueueSpread(db, "B", 6, 2);
    await waitUntil(() => r.count("B") === 6, 3_000, "B while A fails");
    const status = await relay.status();
    assert.deepEqual(status.failingTopics, ["A"]);
    assert.equal(status.backlog, 6);
    aDown = false;
    await waitUntil(() => r.count("A") === 6, 8_000, "A after it recovered");
    assert.deepEqual([...r.byKey("A").values()], [[0, 2, 4], [1, 3, 5]]);
    r.assertEachOnce(12);
  } finally {
    await relay.stop();
  }
});

Deno.test("startRelay() started while Postgres is down retries by itself and publishes once it is up", async () => {
  await using pg = await startPostgres();
  const db = connectPostgres(pg.url, { max: 2, connectTimeout: 2_000 });
  const r = recorder();
  let relay: Awaited<ReturnType<typeof startRelay>> | undefined;
  try {
    await migrate(db, OUTBOX_MIGRATIONS.dir, { table: OUTBOX_MIGRATIONS.table });
    await pg.stop();
    relay = await startRelay(db, { logger: log, pollMs: 60_000, publish: (m) => Promise.resolve(void r.ok.push(m)) });
    await waitUntil(
      async () => !(await relay!.status()).databaseReachable,
      5_000,
      "the relay to find the database down",
    );
    await pg.start();
    await enqueueOnceUp(db, "t", 3);
    await waitUntil(() => r.count("t") === 3, 10_000, "rows enqueued once the database is up");
    assert.equal((await relay.status()).databaseReachable, true);
  } finally {
    await relay?.stop();
    await db.close();
  }
});

Deno.test("startRelay() rejects a batchSize, concurrency or interval that is not positive with a RangeError", () => {
  const db = {} as Database; // never reached: the options are checked first
  const publish = () => Promise.resolve();
  assert.throws(() => startRelay(db, { logger: log, publish, batchSize: 0 }), RangeError);
  assert.throws(() => startRelay(db, { logger: log, publish, concurrency: 1.5 }), RangeError);
  assert.throws(
    () => startRelay(db, { logger: log, publish, pollMs: -1 }),
    new RangeError("Cannot start the outbox relay as pollMs must be positive: current value is -1"),
  );
});
