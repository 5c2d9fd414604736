/**
 * Databases a service owns: the {@linkcode Database} contract, a Postgres adapter, an embedded (PGlite) adapter that
 * confines each service to a schema of one shared instance, file-based migrations that work on both, and optimistic
 * locking (compare-and-set on a version column, retried on conflict).
 * @module
 */
export type { Database, PoolStats, Queryable, QueryOptions, Row, Tx } from "./db.ts";
export { databaseMetrics } from "./metrics.ts";
export { DatabaseUnavailableError, findDatabaseUnavailable, isConnectionError, isUnreachableError } from "./errors.ts";
export { FailFast } from "./fail_fast.ts";
export { ConnectionSlots } from "./connection_slots.ts";
export { connectPostgres, ensureDatabase, type PostgresOptions } from "./postgres.ts";
export { createPglite, type PgliteOptions, type SharedPglite } from "./pglite.ts";
export { migrate, type MigrateOptions, type Migration } from "./migrate.ts";
export {
  findMigrationDirectories,
  formatMigrationFinding,
  lintMigration,
  lintMigrationDirectory,
  type LintMigrationDirectoryOptions,
  MIGRATION_LINT_RULES,
  type MigrationBaseline,
  migrationChecksum,
  type MigrationFinding,
  type MigrationLintRule,
  readMigrationBaseline,
  splitSqlStatements,
  type SqlComment,
  type SqlStatement,
  type SqlToken,
} from "./migration_lint.ts";
export {
  type ConflictRetryOptions,
  retryOnConflict,
  updateVersioned,
  VersionConflictError,
  type VersionedUpdate,
} from "./optimistic.ts";
