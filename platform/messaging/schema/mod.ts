/**
 * The event schema language: schemas as plain JSON data ({@linkcode s}, {@linkcode validate}, {@linkcode Infer}),
 * message types that encode and decode payloads against them ({@linkcode defineMessageType}), compatibility checks
 * between two versions of a schema, and snapshots to commit and diff.
 *
 * @example Declare an event and validate a payload
 * ```ts
 * import { s, validate } from "./mod.ts";
 * const created = s.object({ orderId: s.string(), total: s.integer({ minimum: 0 }) });
 * const result = validate(created, { orderId: "o-1", total: 5 });
 * if (!result.ok) throw new Error("expected a valid payload");
 * ```
 * @module
 */
export * from "./schema.ts";
export * from "./registry.ts";
export * from "./compat.ts";
export * from "./snapshot.ts";
