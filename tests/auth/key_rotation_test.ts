import assert from "node:assert/strict";
import { decodeProtectedHeader } from "jose";
import { createAuthService } from "../../services/auth/service.ts";
import { createGatewayService } from "../../services/gateway/service.ts";
import { createInventoryService } from "../../services/inventory/service.ts";
import { loadConfig, type SystemConfig, withPorts } from "../../services/shared/config.ts";
import { embeddedInfra } from "../../services/shared/embedded.ts";
import { type Infra, migrateService } from "../../services/shared/infra.ts";
import { type DatabaseFixture, freshDatabase } from "@trellis/platform/db/testing";
import { freePorts } from "../support/ports.ts";
import { waitUntil, within } from "@trellis/platform/testing";

/**
 * Rotation timing for the test: the new key signs 1 s after it is published (more than the gateway's 200 ms JWKS
 * cooldown, as the lead must be), and the old key stays published 4 s after that. Production keeps the overlap at
 * least the longest token lifetime; 4 s keeps the test short and is enough for what it checks.
 */
const LEAD_SEC = 1;
const OVERLAP_SEC = 4;

/**
 * Auth, inventory and the gateway in this process on free ports: embedded messaging and storage, and a fresh
 * database each on the real Postgres (starting PGlite would triple the test's set-up time).
 */
async function rotatingSystem() {
  const storageDir = await Deno.makeTempDir({ prefix: "trellis-rotation-" });
  const [gateway, auth, orders, ordersGrpc, inventory, inventoryGrpc, payments, paymentsGrpc, notifications] =
    freePorts(9);
  const base = loadConfig({});
  const config: SystemConfig = withPorts({
    ...base,
    ports: { gateway, auth, orders, ordersGrpc, inventory, inventoryGrpc, payments, paymentsGrpc, notifications },
    authUrl: "",
    grpc: { orders: "", inventory: "", payments: "" },
    notificationsUrl: "",
    storageDir,
    keys: { ...base.keys, publishLeadSec: LEAD_SEC, overlapSec: OVERLAP_SEC },
    jwksCooldownMs: 200,
  });
  const embedded = embeddedInfra({ storageDir });
  const databases: DatabaseFixture[] = [];
  const infra: Infra = {
    ...embedded,
    async database(service, wanted) {
      const fixture = await freshDatabase();
      databases.push(fixture);
      await migrateService(fixture.db, service, wanted?.with);
      return fixture.db;
    },
    async close() {
      await embedded.close();
      for (const fixture of databases) await fixture[Symbol.asyncDispose]();
    },
  };
  const services = [
    createAuthService(config, infra),
    createInventoryService(config, infra),
    createGatewayService(config, infra),
  ];
  const stop = async () => {
    for (const svc of [...services].reverse()) await svc.stop();
    await infra.close();
    await Deno.remove(storageDir, { recursive: true });
  };
  try {
    for (const svc of services) await svc.start();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    config,
    auth: services[0].url,
    gateway: services[2].url,
    [Symbol.asyncDispose]: stop,
  };
}

async function token(auth: string, form: Record<string, string>): Promise<string> {
  const res = await fetch(`${auth}/oauth/token`, { method: "POST", body: new URLSearchParams(form) });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

const kidOf = (jwt: string) => decodeProtectedHeader(jwt).kid!;

async function jwksKids(auth: string): Promise<string[]> {
  const res = await fetch(`${auth}/.well-known/jwks.json`);
  return (await res.json()).keys.map((k: { kid: string }) => k.kid);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("key rotation: tokens keep working through two rotations, and the retired key's tokens get 401", async (t) => {
  await using system = await rotatingSystem();
  const { auth, gateway, config } = system;
  const login = () => token(auth, { grant_type: "password", username: "alice", password: "wonderland" });
  const ops = (scope = "keys:read keys:rotate") =>
    token(auth, {
      grant_type: "client_credentials",
      client_id: "ops",
      client_secret: config.clientSecrets.ops,
      audience: "auth",
      scope,
    });
  const products = (jwt: string) => fetch(`${gateway}/v1/products`, { headers: { authorization: `Bearer ${jwt}` } });
  const rotate = async (opsToken: string) => {
    const res = await fetch(`${auth}/admin/keys/rotate`, {
      method: "POST",
      headers: { authorization: `Bearer ${opsToken}` },
    });
    const body = await res.json();
    assert.equal(res.status, 201, JSON.stringify(body));
    return body as { kid: string; activatesAt: string; retiring: { kid: string; retiresAt: string }[] };
  };

  const first = await login();
  const firstKid = kidOf(first);
  let firstRetiresAt = Infinity;

  await t.step("rotating twice under a steady stream of authenticated requests fails none of them", async () => {
    const stats = {
      ok: 0,
      failures: [] as string[],
      byKid: new Map<string, number>(),
      firstTokenAfterSuccessorSigned: 0,
      latencies: [] as number[],
      issued: 0,
    };
    let latest = first;
    let successorSignsAt = Infinity;
    let stopping = false;
    const started = performance.now();
    // Fresh tokens all along, so requests carry whichever key auth signs with at the moment.
    const issuing = (async () => {
      while (!stopping) {
        latest = await login();
        stats.issued++;
      }
    })();
    const worker = async (n: number) => {
      for (let i = n; !stopping; i++) {
        // Every fourth request reuses the very first token while its key is still published.
        const reuseFirst = i % 4 === 0 && Date.now() < firstRetiresAt - 1_500;
        const jwt = reuseFirst ? first : latest;
        const t0 = performance.now();
        const res = await products(jwt);
        const body = await res.text();
        stats.latencies.push(performance.now() - t0);
        if (res.status !== 200) {
          stats.failures.push(`${res.status} kid=${kidOf(jwt)}: ${body}`);
          continue;
        }
        stats.ok++;
        stats.byKid.set(kidOf(jwt), (stats.byKid.get(kidOf(jwt)) ?? 0) + 1);
        if (reuseFirst && Date.now() > successorSignsAt) stats.firstTokenAfterSuccessorSigned++;
      }
    };
    const workers = Array.from({ length: 4 }, (_, n) => worker(n));
    try {
      await waitUntil(() => stats.ok >= 20, 10_000, "requests to flow");
      const opsToken = await ops();

      const second = await rotate(opsToken);
      assert.deepEqual(second.retiring.map((r) => r.kid), [firstKid]);
      firstRetiresAt = Date.parse(second.retiring[0].retiresAt);
      successorSignsAt = Date.parse(second.activatesAt);
      assert.equal(firstRetiresAt - successorSignsAt, OVERLAP_SEC * 1000);
      assert.ok((await jwksKids(auth)).includes(second.kid), "the new key is published at once");
      assert.equal(kidOf(await login()), firstKid, "but does not sign before the lead time");
      await waitUntil(
        () => (stats.byKid.get(second.kid) ?? 0) >= 10,
        10_000,
        "tokens signed by the second key to be accepted",
      );

      const third = await rotate(opsToken);
      assert.deepEqual(third.retiring.map((r) => r.kid), [second.kid]);
      await waitUntil(
        () => (stats.byKid.get(third.kid) ?? 0) >= 10,
        10_000,
        "tokens signed by the third key to be accepted",
      );
      await sleep(300);
    } finally {
      stopping = true;
      await within(Promise.all([issuing, ...workers]), 10_000, "the token issuer and the request loops to stop");
    }
    const seconds = (performance.now() - started) / 1000;
    const sorted = stats.latencies.sort((a, b) => a - b);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))].toFixed(1);
    console.log(
      `rotation under load: ${stats.ok} ok, ${stats.failures.length} failed, ${stats.issued} tokens issued in ` +
        `${seconds.toFixed(1)} s (${(stats.ok / seconds).toFixed(0)} req/s, p50 ${pct(0.5)} ms, p99 ${
          pct(0.99)
        } ms); ` +
        `by kid: ${[...stats.byKid.values()].join("/")}`,
    );
    assert.deepEqual(stats.failures, []);
    assert.equal(stats.byKid.size, 3, "requests were authenticated with all three keys");
    assert.ok(stats.firstTokenAfterSuccessorSigned > 0, "the first token kept working after its successor signed");
    assert.ok(Date.now() < firstRetiresAt);
    const res = await products(first);
    await res.body?.cancel();
    assert.equal(res.status, 200, "the first token still verifies within the overlap window");
  });

  await t.step("after the overlap window the old kid is gone from the JWKS and its token gets 401", async () => {
    await waitUntil(() => Date.now() > firstRetiresAt, OVERLAP_SEC * 2_000, "the first key's overlap to pass");
    const kids = await jwksKids(auth);
    assert.ok(!kids.includes(firstKid), `JWKS still lists ${firstKid}`);
    assert.equal(kids.length, 2);
    // The gateway cached the first token as verified; it must drop it once its JWKS refresh sees the key withdrawn.
    // A refresh happens on a key lookup after the JWKS max-age (the lead time), so each round brings a new token.
    let last: Response | undefined;
    await waitUntil(
      async () => {
        const fresh = await fetch(`${gateway}/v1/not-a-route`, {
          headers: { authorization: `Bearer ${await login()}` },
        });
        await fresh.body?.cancel();
        last = await products(first);
        await last.body?.cancel();
        return last.status === 401;
      },
      5_000,
      "the gateway to refuse the first token",
    );
    assert.match(
      last!.headers.get("www-authenticate") ?? "",
      /error="invalid_token", error_description="unknown signing key"/,
    );
    const again = await products(first);
    await again.body?.cancel();
    assert.equal(again.status, 401);
    const fresh = await products(await login());
    await fresh.body?.cancel();
    assert.equal(fresh.status, 200, "tokens of the current key still work");

    const res = await fetch(`${auth}/admin/keys`, { headers: { authorization: `Bearer ${await ops("keys:read")}` } });
    const listed = (await res.json()).keys as { kid: string; status: string }[];
    assert.deepEqual(listed.map((k) => k.status), ["signing", "verifying", "retired"]);
    assert.equal(listed[2].kid, firstKid);
  });

  await t.step(
    "the admin endpoints refuse callers without the ops client's scopes and never show key material",
    async () => {
      const call = (method: string, path: string, jwt?: string) =>
        fetch(`${auth}${path}`, { method, headers: jwt ? { authorization: `Bearer ${jwt}` } : {} });
      const anonymous = await call("POST", "/admin/keys/rotate");
      await anonymous.body?.cancel();
      assert.equal(anonymous.status, 401);
      const user = await call("POST", "/admin/keys/rotate", await login());
      await user.body?.cancel();
      assert.equal(user.status, 401, "a user token is addressed to the API, not to auth");
      const readOnly = await call("POST", "/admin/keys/rotate", await ops("keys:read"));
      await readOnly.body?.cancel();
      assert.equal(readOnly.status, 403);
      const list = await call("GET", "/admin/keys", await ops("keys:read"));
      const text = await list.text();
      assert.equal(list.status, 200);
      assert.ok(!/"(d|private\w*|ciphertext|iv)"/.test(text), text);
    },
  );
});
