import { connectPostgres, type Database, ensureDatabase, migrate } from "@trellis/platform/db";
import type { PubSub } from "@trellis/platform/messaging";
import type { ObjectStore } from "@trellis/platform/storage";

/**
 * The infrastructure a service is wired to. The same service code runs on either implementation: embedded (one
 * process, PGlite, in-memory messaging) or distributed (Postgres, Kafka, NATS). Connections are made on first use,
 * so a process only opens what its service needs.
 *
 * Three buses, chosen by what losing a message would cost: `events` for the saga's events and commands (durable,
 * ordered per key), `jobs` for work somebody is owed that needs no order (durable: a receipt), `notices` only for
 * what may be lost (at most once).
 */
export interface Infra {
  /**
   * The migrated database owned by `service` (its own database, or its own schema when embedded): `with` lists
   * library migrations to apply first (such as the outbox's), then the service's own from `migrations/<service>/`
   * when it has that folder (the gateway has none: its only table is the SDK's idempotency keys).
   */
  database(service: string, options?: { with?: readonly MigrationSet[] }): Promise<Database>;
  /** Durable, at-least-once topics, ordered per key (Kafka when distributed). */
  events(): Promise<PubSub>;
  /**
   * Durable, at-least-once work items, each handled by one member of a consumer group, not ordered (JetStream durable
   * consumers when distributed, the in-memory broker when embedded). A message published while no consumer runs
   * waits for one, so work owed to somebody (a receipt) survives its consumer being down; handlers must be
   * idempotent, since a message can come twice.
   */
  jobs(): Promise<PubSub>;
  /**
   * At-most-once notifications with queue groups (NATS Core when distributed): only for what may be lost, since a
   * message published while no subscriber runs, or whose handler fails, is gone.
   */
  notices(): Promise<PubSub>;
  storage(): ObjectStore;
  /** Closes everything opened; idempotent. */
  close(): Promise<void>;
}

/** A folder of migrations with its own bookkeeping table. */
export interface MigrationSet {
  readonly dir: string | URL;
  readonly table: string;
}

/** Applies `sets` in order, then the service's own migrations from `migrations/<service>/` if that folder exists. */
export async function migrateService(db: Database, service: string, sets: readonly MigrationSet[] = []): Promise<void> {
  for (const set of sets) await migrate(db, set.dir, { table: set.table });
  const own = new URL(`../../migrations/${service}`, import.meta.url);
  const exists = await Deno.stat(own).then(() => true, (e) => {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  });
  if (exists) await migrate(db, own);
}

/** The database URL for one service: same server and credentials, database `<prefix>_<service>`. */
export function serviceDatabaseUrl(base: string, prefix: string, service: string): string {
  const url = new URL(base);
  url.pathname = `/${prefix}_${service}`;
  return url.href;
}

/** Connects to the service's own database `<prefix>_<service>` on the server at `base`, creating it when missing. */
export async function connectServiceDatabase(base: string, prefix: string, service: string): Promise<Database> {
  const url = serviceDatabaseUrl(base, prefix, service);
  await ensureDatabase(url);
  return connectPostgres(url, { applicationName: `trellis-${service}` });
}

/**
 * Memoises an async factory so concurrent first callers share one result. A failed attempt is forgotten, so the next
 * caller tries again (a broker that was down at the first connection may be up by then).
 */
export function once<T>(make: () => Promise<T>): { get: () => Promise<T>; peek: () => Promise<T> | undefined } {
  let p: Promise<T> | undefined;
  return {
    get: () => {
      if (p) return p;
      const attempt = make();
      p = attempt;
      attempt.catch(() => {
        if (p === attempt) p = undefined;
      });
      return attempt;
    },
    peek: () => p,
  };
}
