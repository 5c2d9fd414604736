/**
 * Fault-injection kit for tests of services built on Trellis: private Postgres, NATS and Kafka servers a test may
 * kill, pause and restart ({@linkcode startComponent}), and a network namespace that puts one process behind added
 * latency or a partition, link by link ({@linkcode isolate}).
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
export * from "./bounded.ts";
export {
  isolate,
  IsolatedNetwork,
  type IsolatedSpawnOptions,
  type IsolateOptions,
  type LinkOptions,
  type PartitionOptions,
  removeStaleNamespaces,
  type RemoveStaleOptions,
} from "./netns.ts";
export * from "./text_line_stream.ts";
