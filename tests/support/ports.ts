import { freePorts } from "@trellis/platform/testing";

export { freePorts };

/** What {@linkcode clusterEnv} hands out. */
export interface ClusterEnv {
  /** Database and topic prefix of this cluster (`t` and 10 hex digits). */
  id: string;
  /** Each service's HTTP port. */
  ports: Record<"gateway" | "auth" | "orders" | "inventory" | "payments" | "notifications", number>;
  databaseUrl: string;
  /** The environment of every service process. */
  env: Record<string, string>;
}

/**
 * Free ports for the six services and the environment that runs them as one isolated cluster (its own database
 * prefix and topic prefix) on the Postgres, NATS and Kafka named by `DATABASE_URL`, `NATS_URL` and `KAFKA_BROKERS`
 * (from `overrides`, else from this process's environment); `overrides` win over everything.
 */
export function clusterEnv(storageDir: string, overrides: Record<string, string> = {}): ClusterEnv {
  const id = `t${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
  const [gateway, auth, orders, ordersGrpc, inventory, inventoryGrpc, payments, paymentsGrpc, notifications, traces] =
    freePorts(10);
  const databaseUrl = overrides.DATABASE_URL ?? Deno.env.get("DATABASE_URL") ??
    "postgres://postgres@127.0.0.1:5432/postgres";
  const env: Record<string, string> = {
    GATEWAY_PORT: String(gateway),
    AUTH_PORT: String(auth),
    ORDERS_PORT: String(orders),
    ORDERS_GRPC_PORT: String(ordersGrpc),
    INVENTORY_PORT: String(inventory),
    INVENTORY_GRPC_PORT: String(inventoryGrpc),
    PAYMENTS_PORT: String(payments),
    PAYMENTS_GRPC_PORT: String(paymentsGrpc),
    NOTIFICATIONS_PORT: String(notifications),
    // Where `deno task up` serves its trace receiver (the services ignore it).
    TRACES_PORT: String(traces),
    DATABASE_URL: databaseUrl,
    DATABASE_PREFIX: id,
    TOPIC_PREFIX: `${id}.`,
    KAFKA_BROKERS: Deno.env.get("KAFKA_BROKERS") ?? "127.0.0.1:9092",
    KAFKA_CLIENT: Deno.env.get("KAFKA_CLIENT") ?? "kafkajs",
    NATS_URL: Deno.env.get("NATS_URL") ?? "nats://127.0.0.1:4222",
    STORAGE_DIR: storageDir,
    LOG_LEVEL: "info",
    ...overrides,
  };
  return { id, ports: { gateway, auth, orders, inventory, payments, notifications }, databaseUrl, env };
}
