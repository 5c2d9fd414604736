import { secret } from "@trellis/platform/config";
import { registerSecret } from "@trellis/platform/log";

/** Everything the six services need to find each other and their infrastructure. */
export interface SystemConfig {
  hostname: string;
  ports: {
    gateway: number;
    auth: number;
    orders: number;
    ordersGrpc: number;
    inventory: number;
    inventoryGrpc: number;
    payments: number;
    paymentsGrpc: number;
    notifications: number;
  };
  /** Base URL of the auth service (token endpoint and JWKS). */
  authUrl: string;
  /** `iss` of every token. */
  issuer: string;
  /** Audience of end-user tokens, accepted by the gateway. */
  apiAudience: string;
  /** `host:port` of each gRPC service. */
  grpc: { orders: string; inventory: string; payments: string };
  notificationsUrl: string;
  /** Secrets of the service clients, by client id (`<ID>_CLIENT_SECRET` or `<ID>_CLIENT_SECRET_FILE`). */
  clientSecrets: Record<ServiceClient, string>;
  /** Signing-key management in the auth service. */
  keys: {
    /**
     * Base64 of the 32-byte AES-256-GCM key that encrypts private signing keys at rest (`AUTH_KEY_ENCRYPTION_KEY` or
     * `AUTH_KEY_ENCRYPTION_KEY_FILE`).
     */
    encryptionKey: string;
    /**
     * Seconds between publishing a rotated key in the JWKS and signing with it (`AUTH_KEY_PUBLISH_LEAD_SEC`), so
     * verifiers know it before they meet it: keep it at least `jwksCooldownMs` plus the auth service's key-ring
     * refresh (5 s). Also the JWKS `max-age` (capped at 300 s), so verifiers drop a retired key that soon after.
     */
    publishLeadSec: number;
    /**
     * Seconds the previous key stays published once its successor signs (`AUTH_KEY_OVERLAP_SEC`); at least the
     * longest token lifetime (900 s), or tokens signed just before a rotation stop verifying before they expire.
     */
    overlapSec: number;
  };
  /** Minimum time between JWKS refetches a verifier makes on unknown `kid`s (`JWKS_COOLDOWN_MS`). */
  jwksCooldownMs: number;
  /** Simulated payment provider behaviour. */
  payments: { failureRate: number; latencyMs: number };
  /** Order saga deadlines. */
  orders: {
    /**
     * Milliseconds an order may stay PENDING (`ORDER_DEADLINE_MS`); past it the saga is compensated to CANCELLED
     * (stock released, charge voided or refunded). @default {60000}
     */
    deadlineMs: number;
    /** Milliseconds between sweeps for orders past their deadline (`ORDER_SWEEP_MS`). @default {5000} */
    sweepMs: number;
  };
  /**
   * Seconds between scheduled reconciliation runs (repairing) in each service that owns checks
   * (`RECONCILE_INTERVAL_S`); 0 turns the schedule off (runs on demand through `POST /admin/reconcile` only).
   * @default {300}
   */
  reconcileIntervalS: number;
  /** Gateway rate limit per user: a burst of `burst` requests, refilled at `perSec`. */
  rateLimit: { burst: number; perSec: number };
  /** The gateway's `Idempotency-Key` records, kept in its database. */
  idempotency: {
    /**
     * Milliseconds a finished request's response is replayed for its key (`GATEWAY_IDEMPOTENCY_TTL_MS`).
     * @default {86400000}
     */
    ttlMs: number;
    /**
     * Milliseconds a request in flight holds its key (`GATEWAY_IDEMPOTENCY_LEASE_MS`): a gateway killed mid-request
     * blocks a retry with its key (409) at most this long. Keep it above the longest request deadline (10 s by
     * default). @default {30000}
     */
    leaseMs: number;
  };
  /**
   * Web origins allowed to call the gateway from a browser (`GATEWAY_CORS_ORIGINS`: a comma-separated list such as
   * `https://shop.example,https://admin.example`, or `*`); empty means CORS is off and browsers refuse cross-origin
   * calls.
   */
  corsOrigins: string[] | "*";
  /** Where local object storage keeps its files. */
  storageDir: string;
}

/** Services that call others with client-credentials tokens. */
export type ServiceClient = "gateway" | "orders" | "inventory" | "payments" | "ops";

/**
 * The development key-encryption key, used when `AUTH_KEY_ENCRYPTION_KEY` is not set. It is public (it is in this
 * file), so keys encrypted under it are as good as plaintext: set a real one anywhere but a laptop.
 */
export const DEV_ONLY_KEY_ENCRYPTION_KEY = btoa("dev-only-kek-do-not-use-in-prod!");

const DEFAULT_PORTS: SystemConfig["ports"] = {
  gateway: 8080,
  auth: 8081,
  orders: 8082,
  ordersGrpc: 50051,
  inventory: 8083,
  inventoryGrpc: 50052,
  payments: 8084,
  paymentsGrpc: 50053,
  notifications: 8085,
};

const PORT_ENV: Record<keyof SystemConfig["ports"], string> = {
  gateway: "GATEWAY_PORT",
  auth: "AUTH_PORT",
  orders: "ORDERS_PORT",
  ordersGrpc: "ORDERS_GRPC_PORT",
  inventory: "INVENTORY_PORT",
  inventoryGrpc: "INVENTORY_GRPC_PORT",
  payments: "PAYMENTS_PORT",
  paymentsGrpc: "PAYMENTS_GRPC_PORT",
  notifications: "NOTIFICATIONS_PORT",
};

/**
 * Reads the system configuration from environment variables (`GATEWAY_PORT`, `AUTH_URL`, `PAYMENTS_FAILURE_RATE`,
 * ...), with defaults that run everything on 127.0.0.1. Bad values throw a `RangeError` naming the variable.
 */
export function loadConfig(env: Record<string, string | undefined> = Deno.env.toObject()): SystemConfig {
  const hostname = env.TRELLIS_HOST ?? "127.0.0.1";
  // The database password travels inside DATABASE_URL, not through secret(): keep it out of the logs all the same.
  registerSecret(URL.parse(env.DATABASE_URL ?? "")?.password ?? "");
  const ports = { ...DEFAULT_PORTS };
  for (const [k, name] of Object.entries(PORT_ENV) as [keyof SystemConfig["ports"], string][]) {
    if (env[name] !== undefined) ports[k] = intIn(env, name, 0, 65535);
  }
  return withPorts({
    hostname,
    ports,
    authUrl: env.AUTH_URL ?? "",
    issuer: env.TOKEN_ISSUER ?? "trellis-auth",
    apiAudience: "trellis-api",
    grpc: {
      orders: env.ORDERS_GRPC_ADDR ?? "",
      inventory: env.INVENTORY_GRPC_ADDR ?? "",
      payments: env.PAYMENTS_GRPC_ADDR ?? "",
    },
    notificationsUrl: env.NOTIFICATIONS_URL ?? "",
    clientSecrets: {
      gateway: secret("GATEWAY_CLIENT_SECRET", { env, fallback: "dev-only-gateway-secret" }),
      orders: secret("ORDERS_CLIENT_SECRET", { env, fallback: "dev-only-orders-secret" }),
      inventory: secret("INVENTORY_CLIENT_SECRET", { env, fallback: "dev-only-inventory-secret" }),
      payments: secret("PAYMENTS_CLIENT_SECRET", { env, fallback: "dev-only-payments-secret" }),
      ops: secret("OPS_CLIENT_SECRET", { env, fallback: "dev-only-ops-secret" }),
    },
    keys: {
      encryptionKey: aes256Key(
        "AUTH_KEY_ENCRYPTION_KEY",
        secret("AUTH_KEY_ENCRYPTION_KEY", { env, fallback: DEV_ONLY_KEY_ENCRYPTION_KEY }),
      ),
      publishLeadSec: numIn(env, "AUTH_KEY_PUBLISH_LEAD_SEC", 0, 86_400, 60),
      overlapSec: numIn(env, "AUTH_KEY_OVERLAP_SEC", 0, 30 * 86_400, 900),
    },
    jwksCooldownMs: numIn(env, "JWKS_COOLDOWN_MS", 0, 600_000, 5_000),
    payments: {
      failureRate: numIn(env, "PAYMENTS_FAILURE_RATE", 0, 1, 0),
      latencyMs: numIn(env, "PAYMENTS_LATENCY_MS", 0, 60_000, 0),
    },
    orders: {
      deadlineMs: numIn(env, "ORDER_DEADLINE_MS", 1, 7 * 86_400_000, 60_000),
      sweepMs: numIn(env, "ORDER_SWEEP_MS", 10, 3_600_000, 5_000),
    },
    reconcileIntervalS: reconcileInterval(env),
    rateLimit: {
      burst: numIn(env, "GATEWAY_RATE_LIMIT_BURST", 1, 1_000_000, 2_000),
      perSec: numIn(env, "GATEWAY_RATE_LIMIT_PER_SEC", 1, 1_000_000, 1_000),
    },
    idempotency: {
      ttlMs: numIn(env, "GATEWAY_IDEMPOTENCY_TTL_MS", 1_000, 30 * 86_400_000, 86_400_000),
      leaseMs: numIn(env, "GATEWAY_IDEMPOTENCY_LEASE_MS", 100, 3_600_000, 30_000),
    },
    corsOrigins: origins(env, "GATEWAY_CORS_ORIGINS"),
    storageDir: env.STORAGE_DIR ?? ".trellis/storage",
  });
}

/** A list of web origins (scheme, host, optional port, nothing else), `*`, or none when unset or empty. */
function origins(env: Record<string, string | undefined>, name: string): string[] | "*" {
  const raw = (env[name] ?? "").trim();
  if (raw === "*") return "*";
  const list = raw.split(",").map((o) => o.trim()).filter((o) => o !== "");
  for (const o of list) {
    let origin: string | undefined;
    try {
      origin = new URL(o).origin;
    } catch { /* reported below */ }
    if (origin !== o || !/^https?:/.test(o)) {
      throw new RangeError(
        `Cannot use ${name}=${JSON.stringify(raw)}: ${JSON.stringify(o)} is not an origin such as https://shop.example`,
      );
    }
  }
  return list;
}

/** Fills the peer addresses that were left empty from the ports. */
export function withPorts(config: SystemConfig): SystemConfig {
  const h = config.hostname;
  const p = config.ports;
  return {
    ...config,
    authUrl: config.authUrl || `http://${h}:${p.auth}`,
    grpc: {
      orders: config.grpc.orders || `${h}:${p.ordersGrpc}`,
      inventory: config.grpc.inventory || `${h}:${p.inventoryGrpc}`,
      payments: config.grpc.payments || `${h}:${p.paymentsGrpc}`,
    },
    notificationsUrl: config.notificationsUrl || `http://${h}:${p.notifications}`,
  };
}

function intIn(env: Record<string, string | undefined>, name: string, min: number, max: number): number {
  const v = Number(env[name]);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(
      `Cannot use ${name}=${JSON.stringify(env[name])}: it must be an integer from ${min} to ${max}`,
    );
  }
  return v;
}

/** `value` when it is base64 of 32 bytes; the error names the variable and never echoes the secret. */
function aes256Key(name: string, value: string): string {
  let bytes = -1;
  try {
    bytes = atob(value.replaceAll("-", "+").replaceAll("_", "/").padEnd(Math.ceil(value.length / 4) * 4, "=")).length;
  } catch { /* reported below */ }
  if (bytes !== 32) {
    throw new RangeError(`Cannot use ${name}: it must be base64 of 32 random bytes (e.g. \`openssl rand -base64 32\`)`);
  }
  return value;
}

/** `RECONCILE_INTERVAL_S`; an empty value is refused, since it would read as 0 and turn the schedule off unsaid. */
function reconcileInterval(env: Record<string, string | undefined>): number {
  if (env.RECONCILE_INTERVAL_S?.trim() === "") {
    throw new RangeError(`Cannot use RECONCILE_INTERVAL_S="": it must be a number of seconds from 0 (off) to 604800`);
  }
  return numIn(env, "RECONCILE_INTERVAL_S", 0, 7 * 86_400, 300);
}

function numIn(env: Record<string, string | undefined>, name: string, min: number, max: number, dflt: number): number {
  if (env[name] === undefined) return dflt;
  const v = Number(env[name]);
  if (!Number.isFinite(v) || v < min || v > max) {
    throw new RangeError(`Cannot use ${name}=${JSON.stringify(env[name])}: it must be a number from ${min} to ${max}`);
  }
  return v;
}
