import { createPglite, type Database } from "@trellis/platform/db";
import { createMemoryBroker, tracePubSub } from "@trellis/platform/messaging";
import { localStore } from "@trellis/platform/storage";
import { connectServiceDatabase, type Infra, migrateService, once } from "./infra.ts";

/**
 * Embedded infrastructure for `deno task dev` and the embedded end-to-end test: one PGlite shared by every service
 * (a schema each) unless `databaseUrl` is given (then a database each on that server), in-memory messaging,
 * local-disk storage.
 */
export function embeddedInfra(options: { storageDir: string; databaseUrl?: string }): Infra {
  const pglite = once(() => createPglite());
  const events = tracePubSub(createMemoryBroker(), "memory");
  const jobs = tracePubSub(createMemoryBroker(), "memory");
  const notices = tracePubSub(createMemoryBroker(), "memory");
  const dbs: Database[] = [];
  const storage = localStore(options.storageDir);
  let closing: Promise<void> | undefined;
  return {
    async database(service, wanted) {
      const db = options.databaseUrl
        ? await connectServiceDatabase(options.databaseUrl, "trellis_dev", service)
        : (await pglite.get()).database(service);
      dbs.push(db);
      await migrateService(db, service, wanted?.with);
      return db;
    },
    events: () => Promise.resolve(events),
    jobs: () => Promise.resolve(jobs),
    notices: () => Promise.resolve(notices),
    storage: () => storage,
    close() {
      closing ??= (async () => {
        await Promise.all([events.close(), jobs.close(), notices.close()]);
        for (const db of dbs) await db.close();
        await (await pglite.peek())?.close();
      })();
      return closing;
    },
  };
}
