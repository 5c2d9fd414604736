import assert from "node:assert/strict";
import { exportPublicJwk, generateSigningKey, type PublicJwk } from "./keys.ts";
import { remoteJwks } from "./remote_jwks.ts";
import { within } from "../testing/mod.ts";

/** A real JWKS endpoint on a loopback socket that counts fetches and can be told to fail or stall. */
function serveJwks(initial: PublicJwk[]) {
  const state = {
    keys: initial,
    fetches: 0,
    status: 200,
    body: undefined as string | undefined,
    stall: undefined as Promise<void> | undefined,
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
    state.fetches++;
    if (state.stall) await within(state.stall, 10_000, "the test to release the stalled JWKS fetch");
    return new Response(state.body ?? JSON.stringify({ keys: state.keys }), {
      status: state.status,
      headers: { "content-type": "application/json" },
    });
  });
  return {
    state,
    url: `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function fakeClock(start = 1_000_000) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

Deno.test("remoteJwks() fetches once and serves known kids from its cache", async () => {
  const key = await generateSigningKey();
  await using server = serveJwks([await exportPublicJwk(key)]);
  const jwks = remoteJwks(server.url);
  assert.equal(jwks.fetchedAt, undefined);
  const found = await Promise.all([jwks.get(key.kid), jwks.get(key.kid), jwks.get(key.kid)]);
  assert.ok(found.every((k) => k instanceof CryptoKey));
  assert.equal(await jwks.get(key.kid), found[0]);
  assert.equal(server.state.fetches, 1);
  assert.equal(await jwks.ready(), true);
});

Deno.test("remoteJwks() refetches on an unknown kid and finds a key published since", async () => {
  const [old, next] = [await generateSigningKey(), await generateSigningKey()];
  await using server = serveJwks([await exportPublicJwk(old)]);
  const clock = fakeClock();
  const jwks = remoteJwks(server.url, { cooldownMs: 30_000, now: clock.now });
  assert.ok(await jwks.get(old.kid));
  server.state.keys = [await exportPublicJwk(next), await exportPublicJwk(old)];
  clock.t += 30_000;
  assert.ok(await jwks.get(next.kid));
  assert.equal(server.state.fetches, 2);
});

Deno.test("remoteJwks() lets a flood of bogus kids cost one fetch per cooldown", async () => {
  const key = await generateSigningKey();
  await using server = serveJwks([await exportPublicJwk(key)]);
  const clock = fakeClock();
  const jwks = remoteJwks(server.url, { cooldownMs: 30_000, now: clock.now });
  await jwks.get(key.kid);
  clock.t += 31_000;
  const flood = await Promise.all(Array.from({ length: 50 }, (_, i) => jwks.get(`bogus-${i}`)));
  assert.ok(flood.every((k) => k === undefined));
  assert.equal(server.state.fetches, 2, "the concurrent unknown kids share one fetch");
  for (let i = 0; i < 20; i++) assert.equal(await jwks.get(`bogus-again-${i}`), undefined);
  clock.t += 29_000;
  assert.equal(await jwks.get("still-cooling"), undefined);
  assert.equal(server.state.fetches, 2, "no fetch within the cooldown");
  clock.t += 1_000;
  assert.equal(await jwks.get("after-cooldown"), undefined);
  assert.equal(server.state.fetches, 3);
});

Deno.test("remoteJwks() keeps using cached keys while the auth service answers 503", async () => {
  const key = await generateSigningKey();
  await using server = serveJwks([await exportPublicJwk(key)]);
  const clock = fakeClock();
  const jwks = remoteJwks(server.url, { maxAgeMs: 60_000, cooldownMs: 1_000, now: clock.now });
  await jwks.get(key.kid);
  server.state.status = 503;
  clock.t += 120_000;
  assert.ok(await jwks.get(key.kid), "a stale key still serves while its refresh runs in the background");
  await assert.rejects(jwks.refresh(), /HTTP 503/);
  assert.equal(server.state.fetches, 2, "refresh() joins the background fetch already under way");
  assert.match(String(jwks.lastError), /HTTP 503/);
  assert.equal(await jwks.get("unknown"), undefined);
  clock.t += 1_000;
  assert.ok(await jwks.get(key.kid));
  assert.equal(await jwks.ready(), true);
  await jwks.refresh().catch(() => {});
});

Deno.test("remoteJwks() refreshes a stale set in the background and picks up withdrawn keys", async () => {
  const [a, b] = [await generateSigningKey(), await generateSigningKey()];
  await using server = serveJwks([await exportPublicJwk(a)]);
  const clock = fakeClock();
  const jwks = remoteJwks(server.url, { maxAgeMs: 600_000, now: clock.now });
  await jwks.get(a.kid);
  server.state.keys = [await exportPublicJwk(b)];
  clock.t += 600_000;
  assert.ok(await jwks.get(a.kid), "answers from cache without waiting");
  await jwks.refresh();
  assert.equal(await jwks.get(a.kid), undefined, "a withdrawn key is gone after the refresh");
  assert.ok(await jwks.get(b.kid));
});

Deno.test("remoteJwks() rejects until a first fetch succeeds, and ready() drives recovery", async () => {
  const key = await generateSigningKey();
  await using server = serveJwks([await exportPublicJwk(key)]);
  server.state.status = 500;
  const clock = fakeClock();
  const jwks = remoteJwks(server.url, { cooldownMs: 30_000, now: clock.now });
  await assert.rejects(jwks.get(key.kid), /has not been fetched yet/);
  await assert.rejects(jwks.get(key.kid), /has not been fetched yet/);
  assert.equal(server.state.fetches, 1, "traffic retries at most once per cooldown");
  assert.equal(await jwks.ready(), false);
  server.state.status = 200;
  assert.equal(await jwks.ready(), true, "ready() retries regardless of the cooldown");
  assert.ok(await jwks.get(key.kid));
  assert.equal(server.state.fetches, 3);
});

Deno.test("remoteJwks() aborts a fetch that outlives timeoutMs", async () => {
  const key = await generateSigningKey();
  await using server = serveJwks([await exportPublicJwk(key)]);
  const { promise: stall, resolve: release } = Promise.withResolvers<void>();
  server.state.stall = stall;
  const jwks = remoteJwks(server.url, { timeoutMs: 50 });
  const started = performance.now();
  await assert.rejects(jwks.refresh(), (err: Error) => err.name === "TimeoutError");
  assert.ok(performance.now() - started < 1_000);
  assert.equal(await jwks.ready(), false);
  release();
});

Deno.test("remoteJwks() refuses a set without usable keys and keeps the keys it had", async () => {
  const key = await generateSigningKey();
  await using server = serveJwks([await exportPublicJwk(key)]);
  const jwks = remoteJwks(server.url);
  await jwks.refresh();
  server.state.body = JSON.stringify({ keys: [{ kty: "oct", k: "c2VjcmV0", kid: "hmac" }] });
  await assert.rejects(jwks.refresh(), /no ES256 signing keys/);
  server.state.body = "not json";
  await assert.rejects(jwks.refresh(), SyntaxError);
  server.state.body = JSON.stringify({ keys: "nope" });
  await assert.rejects(jwks.refresh(), /no "keys" array/);
  assert.ok(await jwks.get(key.kid));
});

Deno.test("remoteJwks() refuses negative or non-finite options", () => {
  assert.throws(() => remoteJwks("http://auth/jwks", { cooldownMs: -1 }), RangeError);
  assert.throws(() => remoteJwks("http://auth/jwks", { timeoutMs: Infinity }), RangeError);
});

Deno.test("remoteJwks() tells onKeysChanged listeners which kids a fetch withdrew, and only then", async () => {
  const [a, b, c] = [await generateSigningKey(), await generateSigningKey(), await generateSigningKey()];
  await using server = serveJwks([await exportPublicJwk(a), await exportPublicJwk(b)]);
  const jwks = remoteJwks(server.url);
  const changes: (readonly string[])[] = [];
  jwks.onKeysChanged(() => {
    throw new Error("a failing listener does not stop the others");
  });
  const unsubscribe = jwks.onKeysChanged((removed) => changes.push(removed));
  await jwks.refresh();
  server.state.keys = [await exportPublicJwk(b), await exportPublicJwk(c)];
  await jwks.refresh();
  assert.deepEqual(changes, [[a.kid]], "adding c is no change worth reporting; withdrawing a is");
  assert.equal(await jwks.get(a.kid), undefined, "the new set is in use");
  unsubscribe();
  server.state.keys = [await exportPublicJwk(c)];
  await jwks.refresh();
  assert.equal(changes.length, 1, "an unsubscribed listener hears nothing");
});

Deno.test("remoteJwks() reports a kid whose key material changed as withdrawn", async () => {
  const [a, impostor] = [await generateSigningKey(), await generateSigningKey()];
  await using server = serveJwks([await exportPublicJwk(a)]);
  const jwks = remoteJwks(server.url);
  const changes: (readonly string[])[] = [];
  jwks.onKeysChanged((removed) => changes.push(removed));
  await jwks.refresh();
  server.state.keys = [{ ...await exportPublicJwk(impostor), kid: a.kid }];
  await jwks.refresh();
  assert.deepEqual(changes, [[a.kid]]);
});

Deno.test("remoteJwks() lets the response's Cache-Control max-age shorten maxAgeMs", async () => {
  const [a, b] = [await generateSigningKey(), await generateSigningKey()];
  const state = { keys: [await exportPublicJwk(a)], fetches: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    state.fetches++;
    return Response.json({ keys: state.keys }, { headers: { "cache-control": "public, max-age=60" } });
  });
  await using _ = { [Symbol.asyncDispose]: () => server.shutdown() };
  const clock = fakeClock();
  const jwks = remoteJwks(`http://127.0.0.1:${server.addr.port}/jwks`, {
    maxAgeMs: 600_000,
    cooldownMs: 1_000,
    now: clock.now,
  });
  await jwks.get(a.kid);
  state.keys = [await exportPublicJwk(b)];
  clock.t += 59_000;
  await jwks.get(a.kid);
  assert.equal(state.fetches, 1, "fresh for max-age");
  clock.t += 1_000;
  assert.ok(await jwks.get(a.kid), "answers from cache while refreshing in the background");
  await jwks.refresh();
  assert.equal(state.fetches, 2, "refresh() joined the background fetch");
  assert.equal(await jwks.get(a.kid), undefined);
});
