import type { Database } from "../../platform/db/db.ts";
import type { PubSub } from "../../platform/messaging/message.ts";
import type { ObjectStore } from "../../platform/storage/object_store.ts";

/**
 * The infrastructure a service is wired to. The same service code runs on either implementation: embedded (one
 * process, PGlite, in-memory messaging) or distributed (Postgres, Kafka, NATS). Connections are made on first use,
 * so a process only opens what its service needs.
 */
export interface Infra {
  /** The migrated database owned by `service` (its own database, or its own schema when embedded). */
  database(service: string): Promise<Database>;
  /** Durable, at-least-once topics, ordered per key (Kafka when distributed). */
  events(): Promise<PubSub>;
  /** At-most-once notifications with queue groups (NATS Core when distributed). */
  notices(): Promise<PubSub>;
  storage(): ObjectStore;
  /** Closes everything opened; idempotent. */
  close(): Promise<void>;
}

/** The migrations folder of a service. */
export function migrationsDir(service: string): string {
  return new URL(`../../migrations/${service}`, import.meta.url).pathname;
}

/** The database URL for one service: same server and credentials, database `<prefix>_<service>`. */
export function serviceDatabaseUrl(base: string, prefix: string, service: string): string {
  const url = new URL(base);
  url.pathname = `/${prefix}_${service}`;
  return url.href;
}

/** Memoises an async factory so concurrent first callers share one result. */
export function once<T>(make: () => Promise<T>): { get: () => Promise<T>; peek: () => Promise<T> | undefined } {
  let p: Promise<T> | undefined;
  return { get: () => (p ??= make()), peek: () => p };
}
