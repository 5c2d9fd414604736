import assert from "node:assert/strict";
import { base64url, exportJWK, SignJWT } from "jose";
import { AuthError } from "./auth_error.ts";
import { createIssuer, type IssueRequest } from "./issuer.ts";
import { type KeySet, staticKeySet } from "./jwks.ts";
import { exportPublicJwk, generateSigningKey, type SigningKey } from "./keys.ts";
import { remoteJwks } from "./remote_jwks.ts";
import { createVerifier, type VerifierOptions } from "./verifier.ts";

const ISS = "https://auth.test";
const NOW = Date.UTC(2030, 0, 1);
const REQUEST: IssueRequest = { sub: "u-1", aud: "orders", scopes: ["orders:read", "orders:write"], ttlSeconds: 300 };

async function setup(options: Partial<VerifierOptions> = {}) {
  const key = await generateSigningKey();
  const clock = { t: NOW };
  let lookups = 0;
  const base = staticKeySet([key]);
  const keys: KeySet = {
    get(kid) {
      lookups++;
      return base.get(kid);
    },
  };
  const verifier = createVerifier({ issuer: ISS, audience: "orders", keys, now: () => clock.t, ...options });
  const issue = (request: Partial<IssueRequest> = {}, signer: { kid: string; privateKey: CryptoKey } = key, at = NOW) =>
    createIssuer({ issuer: ISS, key: signer, now: () => at }).issue({ ...REQUEST, ...request });
  return { key, clock, verifier, issue, lookups: () => lookups };
}

async function rejectsWith(promise: Promise<unknown>, error: AuthError["error"], description: RegExp) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AuthError, `expected AuthError, got ${err}`);
    assert.equal(err.error, error);
    assert.match(err.description, description);
    return true;
  });
}

function encode(part: unknown): string {
  return base64url.encode(JSON.stringify(part));
}

Deno.test("verify() returns the principal of a valid token", async () => {
  const { verifier, issue } = await setup();
  const token = await issue({ extra: { tenant: "t-9" } });
  const principal = await verifier.verify(token);
  assert.equal(principal.sub, "u-1");
  assert.deepEqual(principal.scopes, ["orders:read", "orders:write"]);
  assert.equal(principal.token, token);
  assert.equal(principal.claims?.tenant, "t-9");
  assert.ok(Object.isFrozen(principal));
});

Deno.test("verify() accepts a token for one of several audiences", async () => {
  const { verifier, issue } = await setup();
  assert.equal((await verifier.verify(await issue({ aud: ["payments", "orders"] }))).sub, "u-1");
});

Deno.test("verify() rejects an expired token", async () => {
  const { verifier, issue } = await setup();
  await rejectsWith(
    verifier.verify(await issue({ ttlSeconds: 60 }, undefined, NOW - 91_000)),
    "invalid_token",
    /expired/,
  );
});

Deno.test("verify() accepts a token expired within the clock tolerance", async () => {
  const { verifier, issue } = await setup({ clockToleranceSec: 30 });
  assert.ok(await verifier.verify(await issue({ ttlSeconds: 60 }, undefined, NOW - 80_000)));
});

Deno.test("verify() rejects a token whose nbf is in the future", async () => {
  const { verifier, issue } = await setup();
  await rejectsWith(verifier.verify(await issue({}, undefined, NOW + 120_000)), "invalid_token", /not yet valid/);
});

Deno.test("verify() rejects a token from another issuer or for another audience", async () => {
  const { key, verifier, issue } = await setup();
  const other = await createIssuer({ issuer: "https://evil.test", key, now: () => NOW }).issue(REQUEST);
  await rejectsWith(verifier.verify(other), "invalid_token", /unexpected iss/);
  await rejectsWith(verifier.verify(await issue({ aud: "payments" })), "invalid_token", /unexpected aud/);
});

Deno.test("verify() rejects an unsigned alg none token", async () => {
  const { key, verifier } = await setup();
  const claims = { iss: ISS, sub: "u-1", aud: "orders", exp: NOW / 1000 + 300, scope: "admin" };
  const unsigned = `${encode({ alg: "none", typ: "JWT", kid: key.kid })}.${encode(claims)}`;
  await rejectsWith(verifier.verify(`${unsigned}.`), "invalid_token", /malformed/);
  await rejectsWith(verifier.verify(`${unsigned}.c2ln`), "invalid_token", /algorithm not allowed/);
});

Deno.test("verify() rejects an HS256 token signed with the public key as the HMAC secret", async () => {
  const { key, verifier } = await setup();
  const jwk = await exportJWK(key.publicKey);
  const spki = new Uint8Array(await crypto.subtle.exportKey("spki", key.publicKey));
  for (const secret of [new TextEncoder().encode(JSON.stringify(jwk)), spki]) {
    const forged = await new SignJWT({ scope: "admin" })
      .setProtectedHeader({ alg: "HS256", kid: key.kid, typ: "JWT" })
      .setIssuer(ISS).setSubject("u-1").setAudience("orders").setExpirationTime(NOW / 1000 + 300)
      .sign(secret);
    await rejectsWith(verifier.verify(forged), "invalid_token", /algorithm not allowed/);
  }
});

Deno.test("verify() rejects a token signed by another key under a trusted kid", async () => {
  const { key, verifier, issue } = await setup();
  const attacker: SigningKey = await generateSigningKey();
  const forged = await issue({}, { kid: key.kid, privateKey: attacker.privateKey });
  await rejectsWith(verifier.verify(forged), "invalid_token", /signature verification failed/);
});

Deno.test("verify() rejects a token whose kid it does not know", async () => {
  const { verifier, issue } = await setup();
  await rejectsWith(
    verifier.verify(await issue({}, await generateSigningKey())),
    "invalid_token",
    /unknown signing key/,
  );
});

Deno.test("verify() rejects a token with no kid", async () => {
  const { key, verifier } = await setup();
  const token = await new SignJWT({}).setProtectedHeader({ alg: "ES256" }).setIssuer(ISS).setSubject("u-1")
    .setAudience("orders").setExpirationTime(NOW / 1000 + 300).sign(key.privateKey);
  await rejectsWith(verifier.verify(token), "invalid_token", /no kid/);
});

Deno.test("verify() rejects a token without exp", async () => {
  const { key, verifier } = await setup();
  const token = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: key.kid }).setIssuer(ISS)
    .setSubject("u-1").setAudience("orders").sign(key.privateKey);
  await rejectsWith(verifier.verify(token), "invalid_token", /missing exp/);
});

Deno.test("verify() rejects malformed tokens", async () => {
  const { verifier, issue } = await setup();
  const [header, payload, signature] = (await issue()).split(".");
  for (const token of ["", "abc", "a.b", "a.b.c", `${header}.${payload}`, `${header}.${payload}.${signature}.x`]) {
    await rejectsWith(verifier.verify(token), "invalid_token", /malformed|empty/);
  }
  await rejectsWith(verifier.verify(`${header}.${encode("[1]")}.${signature}`), "invalid_token", /./);
  await rejectsWith(verifier.verify(`${header}.${payload} .${signature}`), "invalid_token", /malformed/);
});

Deno.test("verify() rejects an oversized token before parsing it", async () => {
  const { verifier, issue, lookups } = await setup({ maxTokenBytes: 8192 });
  const token = await issue({ extra: { padding: "x".repeat(9000) } });
  await rejectsWith(verifier.verify(token), "invalid_token", /too large/);
  assert.equal(lookups(), 0);
});

Deno.test("verify() rejects a valid signature moved onto a tampered payload, even once the original is cached", async () => {
  const { verifier, issue } = await setup();
  const token = await issue();
  await verifier.verify(token);
  const [header, , signature] = token.split(".");
  const tampered = `${header}.${encode({ iss: ISS, sub: "admin", aud: "orders", exp: NOW / 1000 + 300 })}.${signature}`;
  await rejectsWith(verifier.verify(tampered), "invalid_token", /signature verification failed/);
});

Deno.test("verify() reports unavailable keys as temporarily_unavailable, not as a bad token", async () => {
  const { issue } = await setup();
  const keys: KeySet = { get: () => Promise.reject(new Error("JWKS never fetched")) };
  const verifier = createVerifier({ issuer: ISS, audience: "orders", keys, now: () => NOW });
  const token = await issue();
  await assert.rejects(verifier.verify(token), (err: AuthError) => err.error === "temporarily_unavailable");
});

Deno.test("verify() skips the key lookup and signature check for a token it verified before", async () => {
  const { verifier, issue, lookups } = await setup();
  const token = await issue();
  const first = await verifier.verify(token);
  assert.equal(await verifier.verify(token), first);
  assert.equal(lookups(), 1);
  assert.equal(verifier.cacheSize, 1);
});

Deno.test("verify() drops a cached token at its exp", async () => {
  const { verifier, issue, clock, lookups } = await setup({ clockToleranceSec: 0 });
  const token = await issue({ ttlSeconds: 60 });
  await verifier.verify(token);
  clock.t = NOW + 59_999;
  await verifier.verify(token);
  assert.equal(lookups(), 1);
  clock.t = NOW + 60_000;
  await rejectsWith(verifier.verify(token), "invalid_token", /expired/);
  assert.equal(verifier.cacheSize, 0);
});

Deno.test("verify() keeps at most cacheMaxEntries tokens, evicting the least recently used", async () => {
  const { verifier, issue, lookups } = await setup({ cacheMaxEntries: 2 });
  const [a, b, c] = [await issue(), await issue(), await issue()];
  await verifier.verify(a);
  await verifier.verify(b);
  await verifier.verify(a);
  await verifier.verify(c);
  assert.equal(verifier.cacheSize, 2);
  assert.equal(lookups(), 3);
  await verifier.verify(a);
  assert.equal(lookups(), 3, "a was used recently, so b was evicted instead");
  await verifier.verify(b);
  assert.equal(lookups(), 4);
});

Deno.test("clear() makes the next verify check the signature again", async () => {
  const { verifier, issue, lookups } = await setup();
  const token = await issue();
  await verifier.verify(token);
  verifier.clear();
  assert.equal(verifier.cacheSize, 0);
  await verifier.verify(token);
  assert.equal(lookups(), 2);
});

Deno.test("cacheMaxEntries 0 turns the cache off", async () => {
  const { verifier, issue, lookups } = await setup({ cacheMaxEntries: 0 });
  const token = await issue();
  await verifier.verify(token);
  await verifier.verify(token);
  assert.equal(lookups(), 2);
  assert.equal(verifier.cacheSize, 0);
});

Deno.test("forgetKeys() drops only the cached tokens signed with the given kids", async () => {
  const [k1, k2] = [await generateSigningKey(), await generateSigningKey()];
  let lookups = 0;
  const base = staticKeySet([k1, k2]);
  const verifier = createVerifier({
    issuer: ISS,
    audience: "orders",
    now: () => NOW,
    keys: { get: (kid) => (lookups++, base.get(kid)) },
  });
  const issue = (key: SigningKey) => createIssuer({ issuer: ISS, key, now: () => NOW }).issue(REQUEST);
  const [t1, t2] = [await issue(k1), await issue(k2)];
  await verifier.verify(t1);
  await verifier.verify(t2);
  assert.equal(verifier.forgetKeys([]), 0);
  assert.equal(verifier.forgetKeys([k1.kid, "never-seen"]), 1);
  assert.equal(verifier.cacheSize, 1);
  await verifier.verify(t2);
  assert.equal(lookups, 2, "t2 is still cached");
  await verifier.verify(t1);
  assert.equal(lookups, 3, "t1 is checked again");
});

Deno.test("verify() rejects a token it had cached once the remote JWKS withdraws its key", async () => {
  const [old, next] = [await generateSigningKey(), await generateSigningKey()];
  const published = { keys: [await exportPublicJwk(next), await exportPublicJwk(old)] };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => Response.json(published));
  await using _ = { [Symbol.asyncDispose]: () => server.shutdown() };
  const jwks = remoteJwks(`http://127.0.0.1:${server.addr.port}/jwks`);
  const verifier = createVerifier({ issuer: ISS, audience: "orders", keys: jwks, now: () => NOW });
  const issue = (key: SigningKey) => createIssuer({ issuer: ISS, key, now: () => NOW }).issue(REQUEST);
  const [oldToken, nextToken] = [await issue(old), await issue(next)];
  await verifier.verify(oldToken);
  await verifier.verify(nextToken);
  assert.equal(verifier.cacheSize, 2);
  published.keys = [await exportPublicJwk(next)];
  await jwks.refresh();
  assert.equal(verifier.cacheSize, 1, "the token signed with the withdrawn key is forgotten");
  await rejectsWith(verifier.verify(oldToken), "invalid_token", /unknown signing key/);
  assert.equal((await verifier.verify(nextToken)).sub, REQUEST.sub);
});

Deno.test("verify() does not cache a token whose key was withdrawn while it was being verified", async () => {
  const key = await generateSigningKey();
  let withdraw: (kids: readonly string[]) => void = () => {};
  const keys: KeySet = {
    get(kid) {
      withdraw([kid]);
      return staticKeySet([key]).get(kid);
    },
    onKeysChanged(listener) {
      withdraw = listener;
      return () => {};
    },
  };
  const verifier = createVerifier({ issuer: ISS, audience: "orders", keys, now: () => NOW });
  const token = await createIssuer({ issuer: ISS, key, now: () => NOW }).issue(REQUEST);
  await verifier.verify(token);
  assert.equal(verifier.cacheSize, 0);
});

Deno.test("verify() rejects a token issued in the future beyond the clock tolerance", async () => {
  const { key, verifier } = await setup();
  const seconds = Math.floor(NOW / 1000);
  const future = await new SignJWT({ scope: "orders:read" })
    .setProtectedHeader({ alg: "ES256", kid: key.kid, typ: "JWT" })
    .setIssuer(ISS)
    .setAudience("orders")
    .setSubject("u-1")
    .setIssuedAt(seconds + 120)
    .setNotBefore(seconds - 10)
    .setExpirationTime(seconds + 600)
    .sign(key.privateKey);
  await rejectsWith(verifier.verify(future), "invalid_token", /issued in the future/);
});
