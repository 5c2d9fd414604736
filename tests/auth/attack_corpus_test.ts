import assert from "node:assert/strict";
import { base64url, decodeJwt, decodeProtectedHeader, type JWTPayload, SignJWT } from "jose";
import { importKeyEncryptionKey, importPrivateJwk, openPrivateJwk, type SigningKey } from "@trellis/platform/auth";
import type { Database } from "@trellis/platform/db";
import { createGrpcClient, NotFoundError, UnauthenticatedError } from "@trellis/platform/grpc";
import { OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import { createGatewayService } from "../../services/gateway/service.ts";
import type { SystemConfig } from "../../services/shared/config.ts";
import type { Infra } from "../../services/shared/infra.ts";
import { freePorts } from "../support/ports.ts";
import { embeddedSystem } from "../support/system.ts";
import { within } from "@trellis/platform/testing";

/**
 * The whole system in this process on free ports, plus what a forger would want: the auth service's real signing
 * key, read from its database and decrypted with the (development) key-encryption key. Signing claims with the real
 * key lets each case isolate the one property under test (an expired token fails because it is expired, not because
 * its signature is wrong).
 */
async function forgerSystem() {
  let authDb: Database | undefined;
  let infra!: Infra;
  const env = await embeddedSystem({
    wrap: (embedded): Infra =>
      infra = {
        ...embedded,
        async database(service, wanted) {
          const db = await embedded.database(service, wanted);
          if (service === "auth") authDb = db;
          return db;
        },
      },
  });
  const { config, system } = env;
  return {
    config,
    /** The system's infrastructure, for another service instance beside it. */
    infra,
    gateway: system.services.gateway.url,
    auth: system.services.auth.url,
    notifications: system.services.notifications.url,
    /** The private key behind `kid`, as the auth service stored it (sealed under the key-encryption key). */
    async signingKey(kid: string): Promise<SigningKey> {
      const rows = await authDb!.query<{ private_enc: string | null; private_iv: string | null }>(
        "select private_enc, private_iv from signing_keys where kid = $1",
        [kid],
      );
      const row = rows[0];
      assert.ok(row?.private_enc && row.private_iv, `auth has no sealed private key for ${kid}`);
      const kek = await importKeyEncryptionKey(config.keys.encryptionKey);
      return await importPrivateJwk(
        await openPrivateJwk(kek, kid, { ciphertext: row.private_enc, iv: row.private_iv }),
      );
    },
    async [Symbol.asyncDispose]() {
      await env[Symbol.asyncDispose]();
    },
  };
}

async function token(auth: string, form: Record<string, string>): Promise<string> {
  const res = await fetch(`${auth}/oauth/token`, { method: "POST", body: new URLSearchParams(form) });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}

const serviceToken = (config: SystemConfig, audience: string) =>
  token(config.authUrl, {
    grant_type: "client_credentials",
    client_id: "gateway",
    client_secret: config.clientSecrets.gateway,
    audience,
  });

const text = new TextEncoder();
const b64 = (v: string | Uint8Array) => base64url.encode(v);
const segment = (v: unknown) => b64(typeof v === "string" ? v : JSON.stringify(v));

/** A compact JWS over arbitrary header and payload bytes, signed ES256 by `key` whatever the header claims. */
async function es256(key: CryptoKey, header: unknown, payload: unknown): Promise<string> {
  const input = `${segment(header)}.${segment(payload)}`;
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, text.encode(input));
  return `${input}.${b64(new Uint8Array(sig))}`;
}

function pem(der: ArrayBuffer): string {
  const body = btoa(String.fromCharCode(...new Uint8Array(der))).match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN PUBLIC KEY-----\n${body}\n-----END PUBLIC KEY-----\n`;
}

async function hs256(secret: Uint8Array, kid: string, claims: JWTPayload): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid, typ: "JWT" }).sign(secret);
}

async function ecKey(): Promise<CryptoKeyPair> {
  return await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
}

/** A request the gateway must refuse: the full `Authorization` header value, since some cases are about its shape. */
interface Case {
  name: string;
  authorization: string;
}

const CHALLENGE = /^Bearer realm="[^"]*", error="invalid_token", error_description="([^"]*)"$/;

/** Sends `authorization` to both gateway routes; asserts 401 problem+json with an invalid_token challenge. */
async function assertRejected(gateway: string, c: Case): Promise<string> {
  const requests = [
    new Request(`${gateway}/v1/products`, { headers: { authorization: c.authorization } }),
    new Request(`${gateway}/v1/orders`, {
      method: "POST",
      headers: {
        authorization: c.authorization,
        "content-type": "application/json",
        "idempotency-key": crypto.randomUUID(),
      },
      body: JSON.stringify({ items: [{ sku: "kettle", quantity: 1 }] }),
    }),
  ];
  const descriptions = new Set<string>();
  for (const req of requests) {
    const what = `${c.name}: ${req.method} ${new URL(req.url).pathname}`;
    const res = await fetch(req);
    const body = await res.text();
    assert.equal(res.status, 401, `${what} answered ${res.status}: ${body}`);
    assert.equal(res.headers.get("content-type"), "application/problem+json", what);
    const problem = JSON.parse(body);
    assert.equal(problem.status, 401, what);
    assert.match(problem.type, /\/unauthorized$/, what);
    const challenge = res.headers.get("www-authenticate") ?? "";
    const match = CHALLENGE.exec(challenge);
    assert.ok(match, `${what}: challenge is ${JSON.stringify(challenge)}`);
    descriptions.add(match[1]);
  }
  return [...descriptions].join(" / ");
}

Deno.test("forged, tampered and misaddressed tokens are refused with 401 invalid_token, never 500", async (t) => {
  await using system = await forgerSystem();
  const { config, gateway } = system;

  const jwks = await (await fetch(`${system.auth}/.well-known/jwks.json`)).text();
  const alice = await token(system.auth, { grant_type: "password", username: "alice", password: "wonderland" });
  const { kid } = decodeProtectedHeader(alice);
  assert.ok(kid && JSON.parse(jwks).keys.some((k: { kid: string }) => k.kid === kid), "alice's kid is in the JWKS");
  const publicJwk = JSON.parse(jwks).keys.find((k: { kid: string }) => k.kid === kid);
  const real = await system.signingKey(kid);
  const publicKey = await crypto.subtle.importKey(
    "jwk",
    { kty: "EC", crv: "P-256", x: publicJwk.x, y: publicJwk.y },
    { name: "ECDSA", namedCurve: "P-256" },
    true,
    ["verify"],
  );
  const spki = await crypto.subtle.exportKey("spki", publicKey);
  const uncompressed = new Uint8Array(await crypto.subtle.exportKey("raw", publicKey));

  const now = Math.floor(Date.now() / 1000);
  const { sub, scope } = decodeJwt(alice);
  const claims: JWTPayload = {
    iss: config.issuer,
    sub,
    aud: config.apiAudience,
    scope,
    iat: now,
    nbf: now,
    exp: now + 600,
    jti: crypto.randomUUID(),
  };
  const header = { alg: "ES256", typ: "JWT", kid };
  const forge = (h: unknown = header, p: unknown = claims) => es256(real.privateKey, h, p);

  await t.step("control: a token forged with the real key and untouched claims is accepted", async () => {
    for (const authorization of [`Bearer ${alice}`, `Bearer ${await forge()}`]) {
      const res = await fetch(`${gateway}/v1/products`, { headers: { authorization } });
      assert.equal(res.status, 200, await res.text());
    }
  });

  const other = await ecKey();
  const otherJwk = await crypto.subtle.exportKey("jwk", other.publicKey);
  const rsa = await crypto.subtle.generateKey(
    { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    true,
    ["sign", "verify"],
  );
  const orders = await serviceToken(config, "orders");
  const bearer = (t: string) => `Bearer ${t}`;
  const tampered = (t: string, i: number) => {
    const parts = t.split(".");
    parts[i] = parts[i].slice(0, -2) + (parts[i].endsWith("AA") ? "BA" : "AA");
    return parts.join(".");
  };
  const unsigned = `${segment({ alg: "none", typ: "JWT" })}.${segment(claims)}`;

  const cases: Case[] = [
    { name: "alg none, empty signature", authorization: bearer(`${unsigned}.`) },
    {
      name: "alg none with kid, empty signature",
      authorization: bearer(`${segment({ alg: "none", kid })}.${segment(claims)}.`),
    },
    { name: "alg none, signature segment present", authorization: bearer(`${unsigned}.${b64("sig")}`) },
    {
      name: "alg None (case variant)",
      authorization: bearer(`${segment({ alg: "None", kid })}.${segment(claims)}.e30`),
    },
    {
      name: "HS256 keyed with the public JWK JSON as served",
      authorization: bearer(await hs256(text.encode(JSON.stringify(publicJwk)), kid, claims)),
    },
    { name: "HS256 keyed with the JWKS document", authorization: bearer(await hs256(text.encode(jwks), kid, claims)) },
    { name: "HS256 keyed with the SPKI PEM", authorization: bearer(await hs256(text.encode(pem(spki)), kid, claims)) },
    {
      name: "HS256 keyed with the SPKI PEM, no final newline",
      authorization: bearer(await hs256(text.encode(pem(spki).trimEnd()), kid, claims)),
    },
    { name: "HS256 keyed with the SPKI DER", authorization: bearer(await hs256(new Uint8Array(spki), kid, claims)) },
    { name: "HS256 keyed with raw x||y", authorization: bearer(await hs256(uncompressed.slice(1), kid, claims)) },
    { name: "HS256 keyed with raw 0x04||x||y", authorization: bearer(await hs256(uncompressed, kid, claims)) },
    {
      name: "ES256 by another key under the real kid",
      authorization: bearer(await es256(other.privateKey, header, claims)),
    },
    {
      name: "ES256 by another key under an unknown kid",
      authorization: bearer(await es256(other.privateKey, { ...header, kid: "attacker-key-1" }, claims)),
    },
    {
      name: "ES256 by another key, embedded jwk header, real kid",
      authorization: bearer(await es256(other.privateKey, { ...header, jwk: otherJwk }, claims)),
    },
    {
      name: "ES256 by another key, embedded jwk header, no kid",
      authorization: bearer(await es256(other.privateKey, { alg: "ES256", jwk: otherJwk }, claims)),
    },
    {
      name: "ES256 by another key, jku pointing at the attacker",
      authorization: bearer(
        await es256(other.privateKey, { ...header, kid: "evil", jku: "http://127.0.0.1:1/jwks.json" }, claims),
      ),
    },
    {
      name: "expired an hour ago",
      authorization: bearer(await forge(header, { ...claims, iat: now - 7200, nbf: now - 7200, exp: now - 3600 })),
    },
    {
      name: "expired beyond the clock tolerance",
      authorization: bearer(await forge(header, { ...claims, exp: now - 120 })),
    },
    { name: "nbf an hour in the future", authorization: bearer(await forge(header, { ...claims, nbf: now + 3600 })) },
    { name: "wrong iss", authorization: bearer(await forge(header, { ...claims, iss: "https://evil.example" })) },
    { name: "iss missing", authorization: bearer(await forge(header, { ...claims, iss: undefined })) },
    { name: "wrong aud: a real service token for orders", authorization: bearer(orders) },
    {
      name: "wrong aud: forged aud [orders]",
      authorization: bearer(await forge(header, { ...claims, aud: ["orders"] })),
    },
    { name: "aud missing", authorization: bearer(await forge(header, { ...claims, aud: undefined })) },
    { name: "exp missing", authorization: bearer(await forge(header, { ...claims, exp: undefined })) },
    { name: "exp as a string", authorization: bearer(await forge(header, { ...claims, exp: String(now + 600) })) },
    { name: "sub missing", authorization: bearer(await forge(header, { ...claims, sub: undefined })) },
    { name: "sub as a number", authorization: bearer(await forge(header, { ...claims, sub: 42 })) },
    { name: "scope as an array", authorization: bearer(await forge(header, { ...claims, scope: ["products:read"] })) },
    { name: "missing kid", authorization: bearer(await forge({ alg: "ES256", typ: "JWT" })) },
    { name: "empty kid", authorization: bearer(await forge({ ...header, kid: "" })) },
    { name: "kid as a number", authorization: bearer(await forge({ ...header, kid: 1 })) },
    {
      name: "kid with path traversal",
      authorization: bearer(await forge({ ...header, kid: "../../../../etc/passwd" })),
    },
    {
      name: "kid with path traversal to the real kid",
      authorization: bearer(await forge({ ...header, kid: `../${kid}` })),
    },
    {
      name: "kid with SQL",
      authorization: bearer(await forge({ ...header, kid: `' OR '1'='1'; drop table signing_keys; --` })),
    },
    { name: "kid with NUL and newline", authorization: bearer(await forge({ ...header, kid: `${kid}\u0000\n` })) },
    { name: "kid 4 KB long", authorization: bearer(await forge({ ...header, kid: "k".repeat(4096) })) },
    { name: "kid 10 KB long", authorization: bearer(await forge({ ...header, kid: "k".repeat(10_240) })) },
    {
      name: "crit header naming an unknown extension",
      authorization: bearer(await forge({ ...header, crit: ["x-evil"], "x-evil": 1 })),
    },
    {
      name: "header segment in standard base64 (+/=)",
      authorization: bearer(`${btoa(JSON.stringify(header))}.${segment(claims)}.AAAA`),
    },
    { name: "header segment with characters outside base64", authorization: bearer(`eyJ!!!.${segment(claims)}.AAAA`) },
    { name: "payload segment that does not decode", authorization: bearer(`${segment(header)}.A.AAAA`) },
    {
      name: "signature segment that does not decode",
      authorization: bearer(`${(await forge()).split(".").slice(0, 2).join(".")}.A`),
    },
    { name: "header that is not JSON", authorization: bearer(await forge("{alg: ES256")) },
    { name: "header that is a JSON array", authorization: bearer(await forge(["ES256"])) },
    { name: "header that is JSON null", authorization: bearer(await forge("null")) },
    { name: "payload that is not JSON", authorization: bearer(await forge(header, "{sub: alice")) },
    { name: "payload that is a JSON string", authorization: bearer(await forge(header, '"alice"')) },
    { name: "payload that is JSON null", authorization: bearer(await forge(header, "null")) },
    { name: "token over 8 KB", authorization: bearer(await forge(header, { ...claims, pad: "x".repeat(8192) })) },
    {
      name: "alg ES384 header over an ES256 signature",
      authorization: bearer(await forge({ ...header, alg: "ES384" })),
    },
    {
      name: "alg RS256 by an RSA key under the real kid",
      authorization: bearer(await new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid }).sign(rsa.privateKey)),
    },
    {
      name: "alg PS256 header over an ES256 signature",
      authorization: bearer(await forge({ ...header, alg: "PS256" })),
    },
    {
      name: "alg EdDSA header over an ES256 signature",
      authorization: bearer(await forge({ ...header, alg: "EdDSA" })),
    },
    { name: "valid token with trailing garbage", authorization: bearer(`${alice}garbage`) },
    { name: "valid token with a fourth segment", authorization: bearer(`${alice}.e30`) },
    { name: "valid token with a trailing dot", authorization: bearer(`${alice}.`) },
    { name: "valid token followed by a space and more", authorization: `Bearer ${alice} garbage` },
    { name: "valid token with its header tampered", authorization: bearer(tampered(alice, 0)) },
    { name: "valid token with its payload tampered", authorization: bearer(tampered(alice, 1)) },
    { name: "valid token with its signature tampered", authorization: bearer(tampered(alice, 2)) },
    {
      name: "valid token with its signature removed",
      authorization: bearer(alice.split(".").slice(0, 2).join(".") + "."),
    },
    { name: "valid token, DER-encoded ECDSA signature", authorization: bearer(derSigned(alice)) },
    { name: "two dots only", authorization: "Bearer .." },
    { name: "one dot only", authorization: "Bearer ." },
    { name: "a single word", authorization: "Bearer not-a-jwt" },
    { name: "empty bearer", authorization: "Bearer " },
    { name: "bare Bearer scheme", authorization: "Bearer" },
  ];

  await t.step(`gateway refuses ${cases.length} attack tokens on GET /v1/products and POST /v1/orders`, async () => {
    const table: string[] = [];
    for (const c of cases) table.push(`  ${c.name.padEnd(56)} -> ${await assertRejected(gateway, c)}`);
    console.log(`${cases.length} attack cases x 2 routes, all 401 invalid_token:\n${table.join("\n")}`);
  });

  await t.step("claims are refused for the claim itself, not for an unrelated reason", async () => {
    const reasons: [string, RegExp][] = [
      ["expired an hour ago", /expired|exp/],
      ["nbf an hour in the future", /not yet valid|nbf/],
      ["wrong iss", /iss/],
      ["wrong aud: a real service token for orders", /aud/],
      ["alg ES384 header over an ES256 signature", /alg/],
      ["ES256 by another key under the real kid", /signature/],
    ];
    for (const [name, reason] of reasons) {
      assert.match(await assertRejected(gateway, cases.find((c) => c.name === name)!), reason, name);
    }
  });

  await t.step("a service token for inventory is UNAUTHENTICATED on the orders gRPC server", async () => {
    const call = async (bearerToken: string | undefined) => {
      using client = createGrpcClient(OrdersServiceService, config.grpc.orders, {
        token: bearerToken === undefined ? undefined : () => Promise.resolve(bearerToken),
        timeoutMs: 5_000,
      });
      return await client.getOrder({ id: crypto.randomUUID(), customerId: "" }).then(() => undefined, (err) => err);
    };
    for (
      const [what, t] of [
        ["inventory token", await serviceToken(config, "inventory")],
        ["notifications token", await serviceToken(config, "notifications")],
        ["alice's user token", alice],
        ["alg none", `${unsigned}.`],
        ["no token", undefined],
      ] as const
    ) {
      const err = await call(t);
      assert.ok(err instanceof UnauthenticatedError, `${what}: ${err}`);
    }
    assert.ok((await call(orders)) instanceof NotFoundError, "control: a token for orders gets past authentication");
  });

  await t.step("notifications /receipts refuses no token and wrong-audience tokens with 401", async () => {
    const receipt = `${system.notifications}/receipts/${crypto.randomUUID()}`;
    const anonymous = await fetch(receipt);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get("content-type"), "application/problem+json");
    assert.match(anonymous.headers.get("www-authenticate") ?? "", /^Bearer realm="[^"]*"$/);
    await anonymous.body?.cancel();
    for (const [what, t] of [["orders token", orders], ["alice's user token", alice]]) {
      const res = await fetch(receipt, { headers: { authorization: `Bearer ${t}` } });
      assert.equal(res.status, 401, what);
      assert.equal(res.headers.get("content-type"), "application/problem+json", what);
      assert.match(res.headers.get("www-authenticate") ?? "", CHALLENGE, what);
      assert.match(res.headers.get("www-authenticate") ?? "", /aud/, what);
      await res.body?.cancel();
    }
    const ok = await fetch(receipt, {
      headers: { authorization: `Bearer ${await serviceToken(config, "notifications")}` },
    });
    assert.equal(ok.status, 404, "control: a token for notifications gets past authentication");
    await ok.body?.cancel();
  });

  await t.step("a gateway whose JWKS is unreachable fails closed, then recovers when it answers", async () => {
    const [deadAuth, port] = freePorts(2);
    const svc = createGatewayService(
      { ...config, authUrl: `http://127.0.0.1:${deadAuth}`, ports: { ...config.ports, gateway: port } },
      system.infra, // its database of idempotency keys is the system gateway's
    );
    const started = svc.start().then(() => "ready", (err) => err);
    // The JWKS stand-in is started last, to release start(); until then nothing listens on deadAuth.
    let jwks: Deno.HttpServer | undefined;
    try {
      const url = `http://127.0.0.1:${port}`;
      const deadline = Date.now() + 5_000;
      let readyz: { status: number; body: { checks?: Record<string, { ok: boolean; error?: string }> } } | undefined;
      while (Date.now() < deadline) {
        try {
          const res = await fetch(`${url}/readyz`);
          readyz = { status: res.status, body: await res.json() };
          if (readyz.body.checks?.jwks?.ok === false) break;
        } catch { /* not listening yet */ }
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(readyz?.status, 503);
      assert.match(readyz!.body.checks?.jwks?.error ?? "", /JWKS/, JSON.stringify(readyz!.body));
      assert.equal(await settledWithin(started, 1_000), "pending", "start() must not finish while the JWKS is down");
      assert.equal(svc.state, "starting");

      const routes: [string, RequestInit][] = [
        ["/v1/products", {}],
        ["/v1/orders", { method: "POST", body: JSON.stringify({ items: [{ sku: "kettle", quantity: 1 }] }) }],
      ];
      for (
        const authorization of [bearer(alice), bearer(await forge()), bearer(`${unsigned}.`), "Bearer ", undefined]
      ) {
        for (const [path, init] of routes) {
          const headers = new Headers({ "content-type": "application/json" });
          if (authorization) headers.set("authorization", authorization);
          const res = await fetch(`${url}${path}`, { ...init, headers });
          const what = `${authorization?.slice(0, 24)} on ${path}: ${res.status} ${await res.clone().text()}`;
          assert.ok(res.status === 401 || res.status === 503, what);
          assert.equal(res.headers.get("content-type"), "application/problem+json", what);
          await res.body?.cancel();
        }
      }
      const keyOutage = await fetch(`${url}/v1/products`, { headers: { authorization: bearer(alice) } });
      assert.equal(
        keyOutage.status,
        503,
        "a well-formed token during a key outage is the server's fault, not the token's",
      );
      assert.match((await keyOutage.json()).type, /auth-unavailable$/);

      // Release start(): once the JWKS answers, the readiness check drives recovery and start() resolves.
      jwks = Deno.serve({ hostname: "127.0.0.1", port: deadAuth, onListen: () => {} }, (req) => {
        const { pathname, search } = new URL(req.url);
        return fetch(new Request(`${system.auth}${pathname}${search}`, req));
      });
      assert.equal(await within(started, 10_000, "start() to finish once the JWKS answers"), "ready");
      const res = await fetch(`${url}/v1/products`, { headers: { authorization: bearer(alice) } });
      assert.equal(res.status, 200, await res.clone().text());
      await res.body?.cancel();
    } finally {
      await svc.stop();
      await jwks?.shutdown();
    }
  });
});

/** "pending" when `p` has not settled after `ms`, else what it resolved to. */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | "pending"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = new Promise<"pending">((r) => timer = setTimeout(() => r("pending"), ms));
  try {
    return await Promise.race([p, pending]);
  } finally {
    clearTimeout(timer);
  }
}

/** `token` with its own signature re-encoded in ASN.1 DER instead of the raw r||s JWS requires. */
function derSigned(token: string): string {
  const [h, p, s] = token.split(".");
  const raw = base64url.decode(s);
  const int = (b: Uint8Array) => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = b.slice(i);
    return v[0] & 0x80 ? [0x02, v.length + 1, 0, ...v] : [0x02, v.length, ...v];
  };
  const body = [...int(raw.slice(0, 32)), ...int(raw.slice(32))];
  return `${h}.${p}.${b64(new Uint8Array([0x30, body.length, ...body]))}`;
}
