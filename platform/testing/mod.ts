/**
 * Fault-injection kit for tests of services built on Trellis: private Postgres, NATS and Kafka servers a test may
 * kill, pause and restart ({@linkcode startComponent}).
 *
 * @example A user's own kill test
 * ```ts ignore
 * import { startPostgres } from "@trellis/platform/testing";
 * await using pg = await startPostgres();
 * await pg.kill();
 * await pg.start();
 * ```
 *
 * @module
 */
export * from "./chaos.ts";
