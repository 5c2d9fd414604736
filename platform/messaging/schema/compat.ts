import type { Literal, Schema } from "./schema.ts";

/**
 * Which readers a change must not break.
 * - `backward`: consumers on the new schema read data written with the old one (replays, in-flight messages).
 * - `forward`: consumers still on the old schema read data written with the new one (rolling deploys).
 * - `full`: both, and a property once published is never dropped (so its name cannot come back with another shape).
 *
 * @example Rolling deploys only need forward compatibility
 * ```ts
 * import { checkCompatibility, type CompatibilityMode } from "./compat.ts";
 * import { s } from "./schema.ts";
 * const mode: CompatibilityMode = "forward";
 * const v1 = s.object({ id: s.string() });
 * const v2 = s.object({ id: s.string(), at: s.string() });
 * checkCompatibility(v1, v2, { mode }).compatible; // true: old consumers ignore `at`
 * ```
 */
export type CompatibilityMode = "backward" | "forward" | "full";

/**
 * What {@linkcode checkCompatibility} found; `problems` is empty exactly when `compatible`.
 *
 * @example Fail a build on a breaking change
 * ```ts
 * import { checkCompatibility, type CompatibilityReport } from "./compat.ts";
 * import { s } from "./schema.ts";
 * const old = s.object({ total: s.number() });
 * const report: CompatibilityReport = checkCompatibility(old, s.object({ total: s.string() }));
 * if (report.compatible) throw new Error("a changed kind must be reported");
 * ```
 */
export interface CompatibilityReport {
  compatible: boolean;
  problems: string[];
}

type Breaks = "backward" | "forward" | "reuse";

const WHY: Record<Breaks, string> = {
  backward: "breaks backward compatibility: consumers on the new schema would reject data written with the old one",
  forward: "breaks forward compatibility: consumers still on the old schema would reject data written with the new one",
  reuse: "a published property is never removed (keep it, optional, so its name is not reused with another shape)",
};

const LOWER = ["minLength", "minimum", "minItems"] as const;
const UPPER = ["maxLength", "maximum", "maxItems"] as const;

function at(path: string): string {
  return path || "(root)";
}

function compare(a: Schema, b: Schema, path: string, report: (breaks: Breaks, problem: string) => void): void {
  if (a.kind !== b.kind) {
    if (a.kind === "integer" && b.kind === "number") report("forward", `${at(path)}: integer widened to number`);
    else if (a.kind === "number" && b.kind === "integer") report("backward", `${at(path)}: number narrowed to integer`);
    else {
      report("backward", `${at(path)}: kind changed from ${a.kind} to ${b.kind}`);
      report("forward", `${at(path)}: kind changed from ${a.kind} to ${b.kind}`);
      return;
    }
  }
  const ra = a as unknown as Record<string, number | undefined>;
  const rb = b as unknown as Record<string, number | undefined>;
  for (const key of LOWER) {
    const [x, y] = [ra[key], rb[key]];
    if (x === y) continue;
    if (y !== undefined && (x === undefined || y > x)) {
      report("backward", `${at(path)}: ${key} raised from ${x} to ${y}`);
    } else report("forward", `${at(path)}: ${key} lowered from ${x} to ${y}`);
  }
  for (const key of UPPER) {
    const [x, y] = [ra[key], rb[key]];
    if (x === y) continue;
    if (y !== undefined && (x === undefined || y < x)) {
      report("backward", `${at(path)}: ${key} lowered from ${x} to ${y}`);
    } else report("forward", `${at(path)}: ${key} raised from ${x} to ${y}`);
  }
  if (a.kind === "string" && b.kind === "string" && a.pattern !== b.pattern) {
    // Whether one regular expression accepts a superset of another is not decidable here; any change may break both.
    const what = `${at(path)}: pattern changed from ${JSON.stringify(a.pattern)} to ${JSON.stringify(b.pattern)}`;
    if (b.pattern !== undefined) report("backward", what);
    if (a.pattern !== undefined) report("forward", what);
  }
  if (a.kind === "enum" && b.kind === "enum") {
    const show = (vs: Literal[]) => vs.map((v) => JSON.stringify(v)).join(", ");
    const removed = a.values.filter((v) => !b.values.includes(v));
    const added = b.values.filter((v) => !a.values.includes(v));
    if (removed.length > 0) report("backward", `${at(path)}: enum values removed: ${show(removed)}`);
    if (added.length > 0) report("forward", `${at(path)}: enum values added: ${show(added)}`);
  }
  if (a.kind === "array" && b.kind === "array") compare(a.items, b.items, `${path}/*`, report);
  if (a.kind === "object" && b.kind === "object") {
    const key = (k: string) => `${path}/${k.replaceAll("~", "~0").replaceAll("/", "~1")}`;
    for (const k of new Set([...Object.keys(a.required), ...Object.keys(a.optional)])) {
      const wasRequired = Object.hasOwn(a.required, k);
      const inB = Object.hasOwn(b.required, k)
        ? b.required[k]
        : Object.hasOwn(b.optional, k)
        ? b.optional[k]
        : undefined;
      if (inB === undefined) {
        report(
          wasRequired ? "forward" : "reuse",
          `${key(k)}: ${wasRequired ? "required" : "optional"} property removed`,
        );
        continue;
      }
      if (wasRequired && !Object.hasOwn(b.required, k)) report("forward", `${key(k)}: required property made optional`);
      compare(wasRequired ? a.required[k] : a.optional[k], inB, key(k), report);
    }
    for (const k of Object.keys(b.required)) {
      if (Object.hasOwn(a.optional, k)) report("backward", `${key(k)}: optional property made required`);
      else if (!Object.hasOwn(a.required, k)) report("backward", `${key(k)}: required property added`);
    }
  }
}

/**
 * Compares a published schema with its proposed replacement under the rules of `mode` (default `full`).
 *
 * Consumers validate on decode with their own copy of the schema and ignore unknown properties, so under `full` the
 * only changes allowed to a published message type are adding optional properties (and reordering): every other
 * change alters the set of accepted values, and either old or new consumers would then reject some message. Widening
 * a range or adding an enum value breaks `forward`; narrowing, adding a required property or removing an enum value
 * breaks `backward`. Anything else needs a new type version (`….v2`), published alongside the old one.
 *
 * @example
 * ```ts
 * import { checkCompatibility } from "./compat.ts";
 * import { s } from "./schema.ts";
 * import assert from "node:assert/strict";
 * const v1 = s.object({ orderId: s.string() });
 * assert.equal(checkCompatibility(v1, s.object({ orderId: s.string() }, { note: s.string() })).compatible, true);
 * assert.deepEqual(checkCompatibility(v1, s.object({ orderId: s.string(), note: s.string() })).compatible, false);
 * ```
 */
export function checkCompatibility(
  old: Schema,
  next: Schema,
  options: { mode?: CompatibilityMode } = {},
): CompatibilityReport {
  const mode = options.mode ?? "full";
  const problems: string[] = [];
  compare(old, next, "", (breaks, problem) => {
    if (mode === "full" || mode === breaks) problems.push(`${problem} (${WHY[breaks]})`);
  });
  return { compatible: problems.length === 0, problems };
}
