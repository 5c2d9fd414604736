// The gateway's Idempotency-Key handling end to end, its records in a real Postgres (the rest of the system embedded).
import assert from "node:assert/strict";
import type { Database, Tx } from "@trellis/platform/db";
import { freshDatabase } from "@trellis/platform/db/testing";
import { waitUntil, within } from "@trellis/platform/testing";
import { createGatewayService } from "../../services/gateway/service.ts";
import { type Infra, migrateService } from "../../services/shared/infra.ts";
import { ApiClient } from "../e2e/scenarios.ts";
import { embeddedSystem } from "../support/system.ts";

/** `infra` with the gateway's database on the Postgres of `keys`, and orders' transactions held while `hold` is set. */
function onPostgres(infra: Infra, keys: Database, hold: { gate?: Promise<void> }): Infra {
  return {
    ...infra,
    async database(service, wanted) {
      if (service === "gateway") {
        await migrateService(keys, service, wanted?.with);
        return keys;
      }
      const db = await infra.database(service, wanted);
      if (service !== "orders") return db;
      return new Proxy(db, {
        get(target, prop) {
          if (prop === "transaction") {
            return async <T>(fn: (tx: Tx) => Promise<T>) => {
              if (hold.gate) await within(hold.gate, 10_000, "the test to let orders' transactions go");
              return await target.transaction(fn);
            };
          }
          const value = Reflect.get(target, prop);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
    },
  };
}

Deno.test("the gateway keeps Idempotency-Keys in Postgres: replay, 422 on a changed body, 409 in flight, a dead gateway's key freed after its lease, replay after a restart", async (t) => {
  await using pg = await freshDatabase();
  const hold: { gate?: Promise<void> } = {};
  let infra!: Infra;
  await using env = await embeddedSystem({
    env: { GATEWAY_IDEMPOTENCY_LEASE_MS: "1500" },
    wrap: (inner) => infra = onPostgres(inner, pg.db, hold),
  });
  const alice = await ApiClient.login(env.endpoints);
  const order = { items: [{ sku: "mug-blue", quantity: 1 }] };
  const post = (key: string, body: unknown = order) =>
    alice.call("POST", "/v1/orders", body, { "idempotency-key": key });
  const record = async (key: string) =>
    (await pg.db.query<{ status: number | null }>("select status from idempotency_keys where key = $1", [key]))[0];

  const carol = await ApiClient.login(env.endpoints, "carol", "chocolate");
  const key = `order-${crypto.randomUUID()}`;
  const postAs = (client: ApiClient, body: unknown, k = key) =>
    client.call("POST", "/v1/orders", body, { "idempotency-key": k });

  const first = await postAs(alice, order);
  assert.equal(first.status, 202, JSON.stringify(first.body));

  await t.step("a replay answers the same status, order and Location, marked as replayed", async () => {
    const again = await postAs(alice, order);
    assert.equal(again.status, 202);
    assert.deepEqual(again.body, first.body, "the stored answer, not the order as it is now");
    assert.equal(again.headers.get("location"), `/v1/orders/${first.body.id}`);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(first.headers.get("idempotent-replayed"), null);
  });

  await t.step("the same key with a changed body is 422 problem+json and places no order", async () => {
    const changed = await postAs(alice, { items: [{ sku: "mug-blue", quantity: 2 }] });
    assert.equal(changed.status, 422);
    assert.equal(changed.headers.get("content-type"), "application/problem+json");
    assert.equal(changed.body.type, "https://trellis.dev/problems/idempotency-key-mismatch");
  });

  await t.step("another user's identical key places their own order", async () => {
    const theirs = await postAs(carol, order);
    assert.equal(theirs.status, 202, JSON.stringify(theirs.body));
    assert.notEqual(theirs.body.id, first.body.id);
  });

  await t.step("a malformed key is 400 problem+json", async () => {
    const bad = await postAs(alice, order, "two words");
    assert.equal(bad.status, 400);
    assert.equal(bad.body.type, "https://trellis.dev/problems/bad-idempotency-key");
  });

  await t.step(
    "a second request with the key while the first is in flight is 409, then the first's answer replays",
    async () => {
      const key = `inflight-${crypto.randomUUID()}`;
      const release = Promise.withResolvers<void>();
      hold.gate = release.promise;
      const first = post(key);
      try {
        await waitUntil(async () => (await record(key)) !== undefined, 10_000, "the first request to claim its key");
        const second = await post(key);
        assert.equal(second.status, 409, JSON.stringify(second.body));
        assert.equal(second.body.type, "https://trellis.dev/problems/idempotency-key-in-flight");
        assert.equal(second.headers.get("retry-after"), "1");
      } finally {
        hold.gate = undefined;
        release.resolve();
      }
      const answered = await within(first, 10_000, "the held request");
      assert.equal(answered.status, 202, JSON.stringify(answered.body));
      assert.equal((await record(key))?.status, 202, "the response is stored in the gateway's Postgres");
      const replay = await post(key);
      assert.equal(replay.headers.get("idempotent-replayed"), "true");
      assert.deepEqual(replay.body, answered.body);
    },
  );

  await t.step(
    "a key left in flight by a gateway that died is 409 until its lease ends, then the retry runs",
    async () => {
      const key = `dead-${crypto.randomUUID()}`;
      const placed = await post(key);
      assert.equal(placed.status, 202, JSON.stringify(placed.body));
      // What a claim leaves when its process dies before storing the response: no response, expiry = the lease.
      await pg.db.query(
        "update idempotency_keys set status = null, headers = null, body = null, expires_at = $2 where key = $1",
        [key, Date.now() + 1_500],
      );
      assert.equal((await post(key)).status, 409);
      let retried: Awaited<ReturnType<typeof post>> | undefined;
      await waitUntil(async () => (retried = await post(key)).status !== 409, 10_000, "the lease to end", 250);
      assert.equal(retried!.status, 202, JSON.stringify(retried!.body));
      assert.equal(retried!.headers.get("idempotent-replayed"), null, "the handler ran again");
      assert.equal(retried!.body.id, placed.body.id, "orders dedupes the forwarded key: still one order");
    },
  );

  await t.step("a new gateway over the same database replays the first answer and refuses a changed body", async () => {
    const key = `restart-${crypto.randomUUID()}`;
    const first = await post(key);
    assert.equal(first.status, 202, JSON.stringify(first.body));
    await env.system.services.gateway.stop();
    const gateway = createGatewayService(env.config, infra);
    await gateway.start();
    try {
      const again = await post(key);
      assert.equal(again.status, 202);
      assert.equal(again.headers.get("idempotent-replayed"), "true");
      assert.deepEqual(again.body, first.body, "the stored answer (PENDING), not the order as it is now");
      assert.equal(again.headers.get("location"), first.headers.get("location"));
      assert.equal(again.headers.get("content-type"), first.headers.get("content-type"));
      const changed = await post(key, { items: [{ sku: "mug-blue", quantity: 3 }] });
      assert.equal(changed.status, 422);
      assert.equal(changed.body.type, "https://trellis.dev/problems/idempotency-key-mismatch");
    } finally {
      await gateway.stop();
    }
  });
});
