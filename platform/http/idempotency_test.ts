import assert from "node:assert/strict";
import { runWithContext } from "../context/mod.ts";
import { createPglite, migrate } from "../db/mod.ts";
import { freshDatabase } from "../db/testing/mod.ts";
import { waitUntil, within } from "../testing/mod.ts";
import { chain, type Handler, type Middleware } from "./handler.ts";
import {
  idempotency,
  type IdempotencyOptions,
  type IdempotencyStore,
  MemoryIdempotencyStore,
  type StoredResponse,
} from "./idempotency.ts";
import { IDEMPOTENCY_MIGRATIONS, PostgresIdempotencyStore } from "./postgres_idempotency_store.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const response = (status: number, body: string): StoredResponse => ({
  status,
  headers: [["content-type", "application/json"]],
  body: enc(body),
});

/** The store contract, run against every implementation; each case uses its own scope. */
const storeSuite: [string, (store: IdempotencyStore, scope: string) => Promise<void>][] = [
  ["of concurrent claims of one key exactly one wins, and the others see it in flight", async (store, scope) => {
    const claims = await Promise.all(Array.from({ length: 8 }, () => store.claim(scope, "k", "fp", 0, 1_000)));
    assert.equal(claims.filter((c) => c.claimed).length, 1);
    for (const c of claims.filter((c) => !c.claimed)) {
      assert.deepEqual(c, { claimed: false, record: { fingerprint: "fp", response: undefined } });
    }
  }],
  ["complete() stores the response, which later claims read back byte for byte", async (store, scope) => {
    const claim = await store.claim(scope, "k", "fp", 0, 1_000);
    assert.ok(claim.claimed);
    const stored = { ...response(201, '{"id":"é"}'), body: new Uint8Array([0, 1, 254, 255]) };
    await store.complete(scope, "k", claim.token, stored, 5_000);
    const again = await store.claim(scope, "k", "other", 4_000, 5_000);
    assert.deepEqual(again, { claimed: false, record: { fingerprint: "fp", response: stored } });
  }],
  ["release() frees the key, and a stale token neither releases nor completes a newer claim", async (store, scope) => {
    const first = await store.claim(scope, "k", "fp", 0, 1_000);
    assert.ok(first.claimed);
    await store.release(scope, "k", first.token);
    const second = await store.claim(scope, "k", "fp2", 1, 1_001);
    assert.ok(second.claimed);
    await store.release(scope, "k", first.token);
    await store.complete(scope, "k", first.token, response(200, "{}"), 9_000);
    const third = await store.claim(scope, "k", "fp3", 2, 1_002);
    assert.deepEqual(third, { claimed: false, record: { fingerprint: "fp2", response: undefined } });
  }],
  ["an expired lease or record counts as absent, and purge() deletes what expired", async (store, scope) => {
    const inFlight = await store.claim(scope, "lease", "fp", 0, 100);
    assert.ok(inFlight.claimed);
    const takeover = await store.claim(scope, "lease", "fp", 100, 200);
    assert.ok(takeover.claimed, "a lease ends at its expiry");
    const done = await store.claim(scope, "done", "fp", 0, 100);
    assert.ok(done.claimed);
    await store.complete(scope, "done", done.token, response(200, "{}"), 300);
    assert.equal((await store.claim(scope, "done", "fp", 299, 399)).claimed, false);
    assert.ok(await store.purge(300) >= 2, "the taken-over lease and the finished record expired by 300");
    const fresh = await store.claim(scope, "done", "fp", 301, 401);
    assert.ok(fresh.claimed);
  }],
  ["keys are separate per scope", async (store, scope) => {
    const a = await store.claim(`${scope}-a`, "k", "fp", 0, 1_000);
    const b = await store.claim(`${scope}-b`, "k", "fp", 0, 1_000);
    assert.ok(a.claimed && b.claimed);
  }],
];

Deno.test("MemoryIdempotencyStore passes the store suite", async (t) => {
  for (const [i, [name, run]] of storeSuite.entries()) {
    await t.step(name, () => run(new MemoryIdempotencyStore(), `s${i}`));
  }
});

Deno.test("MemoryIdempotencyStore drops the oldest record at maxKeys", async () => {
  const store = new MemoryIdempotencyStore({ maxKeys: 2 });
  for (const key of ["a", "b", "c"]) assert.ok((await store.claim("s", key, "fp", 0, 1_000)).claimed);
  assert.equal(store.size, 2);
  assert.ok((await store.claim("s", "a", "fp", 0, 1_000)).claimed, "a was dropped");
  assert.equal((await store.claim("s", "c", "fp", 0, 1_000)).claimed, false);
  assert.throws(() => new MemoryIdempotencyStore({ maxKeys: 0 }), RangeError);
});

Deno.test("PostgresIdempotencyStore passes the store suite", async (t) => {
  await using f = await freshDatabase();
  await migrate(f.db, IDEMPOTENCY_MIGRATIONS.dir, { table: IDEMPOTENCY_MIGRATIONS.table });
  for (const [i, [name, run]] of storeSuite.entries()) {
    // Purges reach across scopes, so each case gets a clean table.
    await f.db.query("delete from idempotency_keys");
    await t.step(name, () => run(new PostgresIdempotencyStore(f.db), `s${i}`));
  }
});

Deno.test("PostgresIdempotencyStore passes the store suite on PGlite", async (t) => {
  await using pglite = await createPglite();
  const db = pglite.database("keys");
  await migrate(db, IDEMPOTENCY_MIGRATIONS.dir, { table: IDEMPOTENCY_MIGRATIONS.table });
  for (const [i, [name, run]] of storeSuite.entries()) {
    await db.query("delete from idempotency_keys");
    await t.step(name, () => run(new PostgresIdempotencyStore(db), `s${i}`));
  }
});

/** Sets the principal from `x-user`, as authentication would. */
const asUser: Middleware = (next) => (req) => {
  const sub = req.headers.get("x-user");
  return runWithContext(
    {
      requestId: "r",
      signal: req.signal,
      ...(sub ? { principal: { sub, scopes: [] } } : {}),
    },
    () => next(req),
  );
};

/** A real server on a free port: `POST /things` creates a thing (counted), with hooks to fail or stall. */
function server(store: IdempotencyStore, options: IdempotencyOptions = {}) {
  let created = 0;
  const gates: PromiseWithResolvers<void>[] = [];
  let failNext: "5xx" | "throw" | undefined;
  const app: Handler = async (req) => {
    if (req.headers.get("x-stall")) {
      const gate = Promise.withResolvers<void>();
      gates.push(gate);
      await within(gate.promise, 5_000, "the test to let the stalled request go on");
    }
    const body = await req.text();
    const fail = failNext;
    failNext = undefined;
    if (fail === "5xx") return Response.json({ error: "down" }, { status: 503 });
    if (fail === "throw") throw new Error("boom");
    return Response.json({ n: ++created, body }, {
      status: 201,
      headers: { location: `/things/${created}`, "x-per-answer": crypto.randomUUID() },
    });
  };
  const handler = chain(asUser, idempotency(store, options))(app);
  const srv = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    try {
      return await handler(req);
    } catch {
      return new Response("thrown", { status: 500 });
    }
  });
  const send = async (
    key: string | undefined,
    body: string,
    headers: Record<string, string> = {},
    method = "POST",
  ) => {
    const res = await within(
      fetch(`http://127.0.0.1:${srv.addr.port}/things`, {
        method,
        headers: {
          "content-type": "application/json",
          ...(key === undefined ? {} : { "idempotency-key": key }),
          ...headers,
        },
        body: method === "GET" ? undefined : body,
      }),
      5_000,
      "the response",
    );
    return { status: res.status, headers: res.headers, text: await res.text() };
  };
  return {
    send,
    created: () => created,
    gates,
    failNext: (how: "5xx" | "throw") => failNext = how,
    async [Symbol.asyncDispose]() {
      for (const g of gates) g.resolve();
      await srv.shutdown();
    },
  };
}

Deno.test("idempotency() over a real socket and Postgres: first use, replay, mismatch, in flight", async (t) => {
  await using f = await freshDatabase();
  await migrate(f.db, IDEMPOTENCY_MIGRATIONS.dir, { table: IDEMPOTENCY_MIGRATIONS.table });
  await using s = server(new PostgresIdempotencyStore(f.db));

  await t.step("the first use runs the handler; a replay returns its status, headers and body unchanged", async () => {
    const first = await s.send('"k-1"', '{"a":1}');
    assert.equal(first.status, 201);
    assert.equal(first.headers.get("idempotent-replayed"), null);
    const again = await s.send('"k-1"', '{"a":1}');
    assert.equal(again.status, 201);
    assert.equal(again.text, first.text);
    assert.equal(again.headers.get("location"), first.headers.get("location"));
    assert.equal(again.headers.get("content-type"), "application/json");
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(again.headers.get("x-per-answer"), null, "only the replay headers are stored");
    assert.equal(s.created(), 1);
  });

  await t.step("a bare token names the same key as the quoted string", async () => {
    const again = await s.send("k-1", '{"a":1}');
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(s.created(), 1);
  });

  await t.step("the same key with a different body is 422 problem+json, and the handler does not run", async () => {
    const res = await s.send('"k-1"', '{"a":2}');
    assert.equal(res.status, 422);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    assert.equal(JSON.parse(res.text).type, "https://trellis.dev/problems/idempotency-key-mismatch");
    assert.equal(s.created(), 1);
  });

  await t.step("the same key while the first request is in flight is 409 problem+json with Retry-After", async () => {
    const first = s.send('"k-2"', "{}", { "x-stall": "1" });
    await waitUntil(() => s.gates.length > 0, 5_000, "the first request to reach the handler", 5);
    const second = await s.send('"k-2"', "{}");
    assert.equal(second.status, 409);
    assert.equal(second.headers.get("content-type"), "application/problem+json");
    assert.equal(second.headers.get("retry-after"), "1");
    s.gates[0].resolve();
    assert.equal((await within(first, 5_000, "the stalled request's answer")).status, 201);
    const replay = await s.send('"k-2"', "{}");
    assert.equal(replay.headers.get("idempotent-replayed"), "true");
  });

  await t.step("a 5xx or a throw releases the key, so the retry runs the handler", async () => {
    for (const how of ["5xx", "throw"] as const) {
      const key = `"release-${how}"`;
      s.failNext(how);
      const failed = await s.send(key, "{}");
      assert.ok(failed.status >= 500, how);
      const before = s.created();
      const retry = await s.send(key, "{}");
      assert.equal(retry.status, 201, how);
      assert.equal(retry.headers.get("idempotent-replayed"), null, how);
      assert.equal(s.created(), before + 1, how);
    }
  });

  await t.step("two principals' identical keys never collide", async () => {
    const alice = await s.send('"shared"', '{"x":1}', { "x-user": "alice" });
    const bob = await s.send('"shared"', '{"x":2}', { "x-user": "bob" });
    assert.deepEqual([alice.status, bob.status], [201, 201]);
    assert.notEqual(JSON.parse(alice.text).n, JSON.parse(bob.text).n);
    const aliceAgain = await s.send('"shared"', '{"x":1}', { "x-user": "alice" });
    assert.equal(aliceAgain.text, alice.text);
  });

  await t.step("a malformed key is 400 problem+json before the handler runs", async () => {
    const before = s.created();
    for (const key of ['""', "x".repeat(256), `"${"x".repeat(256)}"`, "with space", '"open', '"bad\\n"', "a,b", "é"]) {
      const res = await s.send(key, "{}");
      assert.equal(res.status, 400, JSON.stringify(key));
      assert.equal(JSON.parse(res.text).type, "https://trellis.dev/problems/bad-idempotency-key");
    }
    assert.equal(s.created(), before);
    assert.equal((await s.send("x".repeat(255), "{}")).status, 201, "255 characters is the limit");
  });

  await t.step("requests without a key, and safe methods, pass straight through", async () => {
    const before = s.created();
    await s.send(undefined, "{}");
    await s.send(undefined, "{}");
    await s.send('"k-get"', "", {}, "GET");
    await s.send('"k-get"', "", {}, "GET");
    assert.equal(s.created(), before + 4);
  });
});

Deno.test("idempotency() expires keys after ttlMs and purges them", async () => {
  await using f = await freshDatabase();
  await migrate(f.db, IDEMPOTENCY_MIGRATIONS.dir, { table: IDEMPOTENCY_MIGRATIONS.table });
  const clock = { t: 1_000_000 };
  await using s = server(new PostgresIdempotencyStore(f.db), { ttlMs: 1_000, purgeEveryMs: 0, clock: () => clock.t });
  await s.send('"k"', "{}");
  clock.t += 999;
  assert.equal((await s.send('"k"', "{}")).headers.get("idempotent-replayed"), "true");
  clock.t += 1;
  const after = await s.send('"k"', '{"changed":true}');
  assert.equal(after.status, 201, "an expired key is free again, whatever the body");
  assert.equal(after.headers.get("idempotent-replayed"), null);
  assert.equal(s.created(), 2);
  clock.t += 1_000;
  await s.send(undefined, "{}");
  await s.send('"other"', "{}");
  const rows = await f.db.query<{ key: string }>("select key from idempotency_keys order by key");
  assert.deepEqual(rows.map((r) => r.key), ["other"], "the expired key was purged");
});

Deno.test("idempotency() on Postgres releases the key of a handler that failed past the request's deadline", async () => {
  await using f = await freshDatabase();
  await migrate(f.db, IDEMPOTENCY_MIGRATIONS.dir, { table: IDEMPOTENCY_MIGRATIONS.table });
  const deadline = new AbortController();
  let runs = 0;
  const handler = idempotency(new PostgresIdempotencyStore(f.db))(() => {
    if (++runs > 1) return Promise.resolve(new Response("made", { status: 201 }));
    deadline.abort(new Error("deadline exceeded"));
    return Promise.reject(new Error("deadline exceeded"));
  });
  const post = (signal: AbortSignal) =>
    runWithContext(
      { requestId: "r", signal },
      () =>
        handler(new Request("http://x/things", { method: "POST", headers: { "idempotency-key": '"k"' }, body: "{}" })),
    );
  await assert.rejects(within(post(deadline.signal), 5_000, "the failed request"), /deadline exceeded/);
  const retry = await within(post(new AbortController().signal), 5_000, "the retry");
  assert.equal(retry.status, 201);
  assert.equal(runs, 2);
});

Deno.test("idempotency() with required answers 400 to a covered request without a key", async () => {
  await using s = server(new MemoryIdempotencyStore(), { required: true });
  const res = await s.send(undefined, "{}");
  assert.equal(res.status, 400);
  assert.match(JSON.parse(res.text).detail, /needs an Idempotency-Key/);
  assert.equal(s.created(), 0);
  assert.equal((await s.send('"k"', "{}")).status, 201);
});

Deno.test("idempotency() answers 413 to a keyed body over maxBodyBytes without running the handler", async () => {
  await using s = server(new MemoryIdempotencyStore(), { maxBodyBytes: 8 });
  const res = await s.send('"k"', '{"too":"long"}');
  assert.equal(res.status, 413);
  assert.equal(s.created(), 0);
  assert.equal((await s.send('"k"', "{}")).status, 201);
});

Deno.test("idempotency() refuses bad options with a RangeError", () => {
  const store = new MemoryIdempotencyStore();
  assert.throws(() => idempotency(store, { ttlMs: 0 }), RangeError);
  assert.throws(() => idempotency(store, { leaseMs: Number.NaN }), RangeError);
  assert.throws(() => idempotency(store, { purgeEveryMs: -1 }), RangeError);
});
