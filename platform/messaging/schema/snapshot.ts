import { checkCompatibility } from "./compat.ts";
import type { Schema } from "./schema.ts";
import type { MessageType } from "./registry.ts";

/**
 * Every published schema by message type name, as committed to a snapshot file.
 *
 * @example What a snapshot file holds
 * ```ts
 * import { type SchemaSnapshot, snapshotOf } from "./snapshot.ts";
 * import { defineMessageType } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const OrderCreated = defineMessageType({ type: "orders.created.v1", schema: s.object({}) });
 * const snapshot: SchemaSnapshot = snapshotOf([OrderCreated]);
 * Object.keys(snapshot); // ["orders.created.v1"]
 * ```
 */
export type SchemaSnapshot = Record<string, Schema>;

/**
 * The snapshot of `types`: schemas by name, names sorted, so the committed JSON diffs cleanly.
 *
 * @example
 * ```ts
 * import { snapshotOf } from "./snapshot.ts";
 * import { defineMessageType } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const snapshot = snapshotOf([defineMessageType({ type: "orders.created.v1", schema: s.object({ orderId: s.string() }) })]);
 * console.log(JSON.stringify(snapshot, null, 2));
 * ```
 */
export function snapshotOf(types: readonly MessageType[]): SchemaSnapshot {
  const sorted = [...types].sort((a, b) => a.type < b.type ? -1 : a.type > b.type ? 1 : 0);
  return Object.fromEntries(sorted.map((t) => [t.type, JSON.parse(JSON.stringify(t.schema))]));
}

/**
 * What changed between a committed snapshot and the current schemas.
 *
 * @example A new version is added, not a problem
 * ```ts
 * import { diffSnapshot, type SnapshotDiff } from "./snapshot.ts";
 * import { s } from "./schema.ts";
 * const v1 = s.object({ orderId: s.string() });
 * const before = { "orders.created.v1": v1 };
 * const diff: SnapshotDiff = diffSnapshot(before, { ...before, "orders.created.v2": v1 });
 * diff.added; // ["orders.created.v2"]
 * diff.problems.length; // 0
 * ```
 */
export interface SnapshotDiff {
  /** Incompatible changes to types present in both, each prefixed with the type name. */
  problems: string[];
  /** Types in the current schemas only (publishing a new type or version is always allowed). */
  added: string[];
  /** Types in the snapshot only: consumers may still receive them, so dropping one is a deliberate retirement. */
  removed: string[];
  /** Whether the current schemas differ from the snapshot at all (compatible changes included). */
  changed: boolean;
}

/**
 * Checks the current schemas against a committed snapshot under `full` compatibility
 * (see {@linkcode checkCompatibility}).
 *
 * @example
 * ```ts
 * import { diffSnapshot } from "./snapshot.ts";
 * import { s } from "./schema.ts";
 * const diff = diffSnapshot(
 *   { "orders.created.v1": s.object({ orderId: s.string() }) },
 *   { "orders.created.v1": s.object({ orderId: s.string(), customerId: s.string() }) },
 * );
 * console.log(diff.problems); // ["orders.created.v1: /customerId: required property added (…)"]
 * ```
 */
export function diffSnapshot(snapshot: SchemaSnapshot, current: SchemaSnapshot): SnapshotDiff {
  const problems: string[] = [];
  for (const [type, schema] of Object.entries(current)) {
    if (!Object.hasOwn(snapshot, type)) continue;
    for (const p of checkCompatibility(snapshot[type], schema).problems) problems.push(`${type}: ${p}`);
  }
  return {
    problems,
    added: Object.keys(current).filter((t) => !Object.hasOwn(snapshot, t)),
    removed: Object.keys(snapshot).filter((t) => !Object.hasOwn(current, t)),
    changed: JSON.stringify(snapshot) !== JSON.stringify(current),
  };
}
