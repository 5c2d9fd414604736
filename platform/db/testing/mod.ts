/**
 * Test helpers for code on the {@linkcode Database} contract: a fresh Postgres database per test
 * ({@linkcode freshDatabase}) and the conformance suite every adapter passes ({@linkcode databaseConformance}).
 *
 * @example A throwaway database for one test
 * ```ts ignore
 * import { freshDatabase } from "@trellis/platform/db/testing";
 * await using fixture = await freshDatabase();
 * await fixture.db.query("select 1");
 * ```
 * @module
 */
export * from "./fresh_postgres.ts";
export * from "./conformance.ts";
