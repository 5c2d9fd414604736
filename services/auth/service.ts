import {
  authenticate,
  createIssuer,
  createVerifier,
  importKeyEncryptionKey,
  jwksHandler,
  requireScopes,
  staticKeySet,
} from "@trellis/platform/auth";
import { type Database, databaseMetrics } from "@trellis/platform/db";
import { type Handler, HttpError, json, Router } from "@trellis/platform/http";
import { Service } from "@trellis/platform/service";
import type { SystemConfig } from "../shared/config.ts";
import type { Infra } from "../shared/infra.ts";
import { checkClient, checkUser, DEMO_USERS, seedAccounts, type ServiceClientSeed } from "./accounts.ts";
import { type KeyRing, listKeys, loadKeyRing, rotateKey } from "./keystore.ts";

const USER_TTL_SEC = 900;
const SERVICE_TTL_SEC = 300;
/** How often an instance re-reads the key ring, to pick up rotations made by other instances and retire keys. */
const KEY_RING_REFRESH_MS = 5_000;

/** The service clients of the reference system and what each may call. */
export function serviceClients(config: SystemConfig): ServiceClientSeed[] {
  return [
    {
      id: "gateway",
      secret: config.clientSecrets.gateway,
      scopes: ["internal"],
      audiences: ["orders", "inventory", "payments", "notifications"],
    },
    // Reconciliation: orders asks payments and notifications, inventory and payments ask orders (see reconcile.ts).
    {
      id: "orders",
      secret: config.clientSecrets.orders,
      scopes: ["internal"],
      audiences: ["inventory", "payments", "notifications"],
    },
    { id: "inventory", secret: config.clientSecrets.inventory, scopes: ["internal"], audiences: ["orders"] },
    { id: "payments", secret: config.clientSecrets.payments, scopes: ["internal"], audiences: ["orders"] },
    // ops:dlq: the dead-letter endpoints (/admin/dlq) of every service that consumes messages.
    {
      id: "ops",
      secret: config.clientSecrets.ops,
      scopes: ["keys:read", "keys:rotate", "ops:read", "ops:reconcile", "ops:dlq"],
      audiences: ["auth", "orders", "inventory", "payments", "notifications"],
    },
  ];
}

/**
 * The auth service: an OAuth2 token endpoint (`password` grant for demo users, `client_credentials` for services)
 * issuing ES256 JWTs, the JWKS that verifies them, and key administration for the `ops` client (`GET /admin/keys`,
 * `POST /admin/keys/rotate`).
 *
 * Private keys are stored encrypted under `config.keys.encryptionKey`. A rotation publishes the new key at once,
 * signs with it after `publishLeadSec`, and keeps the old key published for `overlapSec` after that. The key ring
 * lives in the database; each instance re-reads it every 5 s, so instances agree on it.
 */
export function createAuthService(config: SystemConfig, infra: Infra): Service {
  const svc = new Service({ name: "auth", hostname: config.hostname, port: config.ports.auth });
  let db: Database;
  let kek: CryptoKey;
  let ring: KeyRing;
  let refreshing: Promise<void> | undefined;
  const refreshRing = () =>
    refreshing ??= loadKeyRing(db, kek, ring).then((next) => {
      ring = next;
    }).finally(() => {
      refreshing = undefined;
    });
  svc.onStart("database", async () => {
    kek = await importKeyEncryptionKey(config.keys.encryptionKey, "AUTH_KEY_ENCRYPTION_KEY");
    db = databaseMetrics(svc.registry, await infra.database("auth"));
    await seedAccounts(db, DEMO_USERS, serviceClients(config));
    ring = await loadKeyRing(db, kek);
  });
  svc.onStart("key ring refresh", () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const schedule = () => {
      timer = setTimeout(() => {
        refreshRing().catch((err) => svc.logger.warn("key ring refresh failed; keeping the keys read before", { err }))
          .finally(() => {
            if (!stopped) schedule();
          });
      }, KEY_RING_REFRESH_MS);
    };
    schedule();
    svc.onStop("key ring refresh", async () => {
      stopped = true;
      clearTimeout(timer);
      await refreshing?.catch(() => {});
    });
    return Promise.resolve();
  });
  svc.check("database", (signal) => db.ping(signal));
  const issuer = () => createIssuer({ issuer: config.issuer, key: ring.signingKey() });
  // Admin calls are rare, so their tokens are not cached: a retired key stops working for them at once.
  const operator = authenticate(
    createVerifier({
      issuer: config.issuer,
      audience: "auth",
      keys: staticKeySet(() => ring.verificationKeys()),
      cacheMaxEntries: 0,
    }),
  );
  const admin = (scope: string, handler: Handler) => {
    const guarded = operator(requireScopes(scope)(handler));
    return (req: Request) => Promise.resolve(guarded(req));
  };

  const router = new Router({ service: svc.name })
    .get(
      "/.well-known/jwks.json",
      jwksHandler(() => ring.published(), { maxAgeSec: Math.min(300, Math.floor(config.keys.publishLeadSec)) }),
    )
    .get("/admin/keys", admin("keys:read", async () => json({ keys: await listKeys(db) }, 200, NO_STORE)))
    .post(
      "/admin/keys/rotate",
      admin("keys:rotate", async () => {
        const rotation = await rotateKey(db, kek, config.keys);
        // Publish from this instance at once: a refresh already under way may have read the ring before the rotation.
        await refreshing?.catch(() => {});
        ring = await loadKeyRing(db, kek, ring);
        svc.logger.info("signing key rotated", { ...rotation });
        return json(rotation, 201, NO_STORE);
      }),
    )
    .post("/oauth/token", async (req) => {
      const form = await readForm(req);
      const grant = form.get("grant_type");
      if (grant === "password") {
        const user = await checkUser(db, field(form, "username"), field(form, "password"));
        if (!user) throw oauthError(400, "invalid_grant", "username or password is wrong");
        const scopes = narrow(user.scopes, form.get("scope"));
        const token = await issuer().issue({ sub: user.id, aud: config.apiAudience, scopes, ttlSeconds: USER_TTL_SEC });
        return tokenResponse(token, USER_TTL_SEC, scopes);
      }
      if (grant === "client_credentials") {
        const [id, secret] = clientCredentials(req, form);
        const client = await checkClient(db, id, secret);
        if (!client) throw oauthError(401, "invalid_client", "client authentication failed");
        const audience = field(form, "audience");
        if (!client.audiences.includes(audience)) {
          throw oauthError(400, "invalid_target", `client ${id} may not call ${audience}`);
        }
        const scopes = narrow(client.scopes, form.get("scope"));
        const token = await issuer().issue({ sub: id, aud: audience, scopes, ttlSeconds: SERVICE_TTL_SEC });
        return tokenResponse(token, SERVICE_TTL_SEC, scopes);
      }
      throw oauthError(
        400,
        "unsupported_grant_type",
        `grant_type must be password or client_credentials, got ${JSON.stringify(grant)}`,
      );
    });
  return svc.handle(router.handler);
}

const NO_STORE = { "cache-control": "no-store" };

async function readForm(req: Request): Promise<URLSearchParams> {
  const type = (req.headers.get("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded") {
    throw new HttpError(415, "unsupported-media-type", "Unsupported media type", {
      detail: "the token endpoint takes application/x-www-form-urlencoded",
    });
  }
  const text = await req.text();
  if (text.length > 8192) throw new HttpError(413, "payload-too-large", "Payload too large");
  return new URLSearchParams(text);
}

function field(form: URLSearchParams, name: string): string {
  const v = form.get(name);
  if (!v) throw oauthError(400, "invalid_request", `${name} is required`);
  return v;
}

function clientCredentials(req: Request, form: URLSearchParams): [string, string] {
  const basic = req.headers.get("authorization");
  if (basic?.startsWith("Basic ")) {
    try {
      const [id, secret] = atob(basic.slice(6)).split(":");
      if (id && secret) return [decodeURIComponent(id), decodeURIComponent(secret)];
    } catch { /* fall through to the form fields */ }
  }
  return [field(form, "client_id"), field(form, "client_secret")];
}

/** The granted scopes: all allowed ones, or the requested subset (asking for more is an error). */
function narrow(allowed: string[], requested: string | null): string[] {
  if (!requested) return allowed;
  const asked = requested.split(" ").filter(Boolean);
  const extra = asked.filter((s) => !allowed.includes(s));
  if (extra.length > 0) throw oauthError(400, "invalid_scope", `scope not allowed: ${extra.join(" ")}`);
  return asked;
}

function oauthError(status: number, error: string, description: string): HttpError {
  return new HttpError(status, `oauth/${error}`, "Token request refused", {
    detail: description,
    extensions: { error, error_description: description },
  });
}

function tokenResponse(token: string, ttl: number, scopes: string[]): Response {
  return json({ access_token: token, token_type: "Bearer", expires_in: ttl, scope: scopes.join(" ") }, 200, {
    "cache-control": "no-store",
  });
}
