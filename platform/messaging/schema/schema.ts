/**
 * A tiny schema language for JSON event payloads. A schema is plain JSON data (so it can be snapshotted and diffed),
 * built with the functions of {@linkcode s}, checked with {@linkcode validate}, and turned into a TypeScript type
 * with {@linkcode Infer}.
 *
 * Objects are open: properties a schema does not name are ignored, never rejected. That is what lets a producer add
 * an optional field without breaking consumers still running the previous schema (see `compat.ts`).
 *
 * @module
 */

/**
 * A string, optionally bounded in length (in code points) and matched against a regular expression.
 *
 * @example A SKU
 * ```ts
 * import { s, type StringSchema, validate } from "./schema.ts";
 * const Sku: StringSchema = s.string({ pattern: "^[a-z0-9-]+$", maxLength: 64 });
 * validate(Sku, "Kettle!").ok; // false
 * ```
 */
export interface StringSchema {
  readonly kind: "string";
  /** Source of a `u`-flag regular expression the whole string must match; anchor it with `^…$`. */
  readonly pattern?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
}

/**
 * A finite number (`number`) or a safe integer (`integer`), optionally bounded (inclusive).
 *
 * @example A quantity between 1 and 99
 * ```ts
 * import { type NumericSchema, s, validate } from "./schema.ts";
 * const Quantity: NumericSchema = s.integer({ minimum: 1, maximum: 99 });
 * validate(Quantity, 1.5).ok; // false: not an integer
 * ```
 */
export interface NumericSchema {
  readonly kind: "integer" | "number";
  readonly minimum?: number;
  readonly maximum?: number;
}

/**
 * `true` or `false`.
 *
 * @example A flag
 * ```ts
 * import { type BooleanSchema, s, validate } from "./schema.ts";
 * const Gift: BooleanSchema = s.boolean();
 * validate(Gift, "yes").ok; // false
 * ```
 */
export interface BooleanSchema {
  readonly kind: "boolean";
}

/**
 * One of a fixed list of literals.
 *
 * @example A currency
 * ```ts
 * import { type EnumSchema, s, validate } from "./schema.ts";
 * const Currency: EnumSchema<readonly ["EUR", "USD"]> = s.enum(["EUR", "USD"]);
 * validate(Currency, "GBP").ok; // false
 * ```
 */
export interface EnumSchema<V extends readonly Literal[] = readonly Literal[]> {
  readonly kind: "enum";
  readonly values: V;
}

/**
 * An array whose every element matches `items`.
 *
 * @example One to fifty tags
 * ```ts
 * import { type ArraySchema, s, type StringSchema, validate } from "./schema.ts";
 * const Tags: ArraySchema<StringSchema> = s.array(s.string(), { minItems: 1, maxItems: 50 });
 * validate(Tags, []).ok; // false
 * ```
 */
export interface ArraySchema<I extends Schema = Schema> {
  readonly kind: "array";
  readonly items: I;
  readonly minItems?: number;
  readonly maxItems?: number;
}

/**
 * An object with `required` and `optional` properties; other properties are allowed and ignored.
 *
 * @example Extra properties are ignored
 * ```ts
 * import { type ObjectSchema, s, validate } from "./schema.ts";
 * const Ref: ObjectSchema = s.object({ id: s.string() }, { note: s.string() });
 * validate(Ref, { id: "o-1", addedLater: true }).ok; // true
 * ```
 */
export interface ObjectSchema<
  R extends Record<string, Schema> = Record<string, Schema>,
  O extends Record<string, Schema> = Record<string, Schema>,
> {
  readonly kind: "object";
  readonly required: R;
  readonly optional: O;
}

/**
 * A value an {@linkcode EnumSchema} can list.
 *
 * @example The values an enum may list
 * ```ts
 * import { type Literal, s } from "./schema.ts";
 * const versions = [1, 2] as const satisfies readonly Literal[];
 * const Version = s.enum(versions);
 * ```
 */
export type Literal = string | number | boolean;

/**
 * Any schema.
 *
 * @example A function over any schema
 * ```ts
 * import { type Schema, s } from "./schema.ts";
 * const describe = (schema: Schema): string =>
 *   schema.kind === "object" ? Object.keys(schema.required).join(", ") : schema.kind;
 * describe(s.object({ orderId: s.string(), total: s.integer() })); // "orderId, total"
 * ```
 */
export type Schema = StringSchema | NumericSchema | BooleanSchema | EnumSchema | ArraySchema | ObjectSchema;

type Simplify<T> = { [K in keyof T]: T[K] } & unknown;

/**
 * The TypeScript type of the values a schema accepts.
 *
 * @example
 * ```ts
 * import { type Infer, s } from "./schema.ts";
 * const Item = s.object({ sku: s.string(), quantity: s.integer({ minimum: 1 }) });
 * const item: Infer<typeof Item> = { sku: "kettle", quantity: 2 };
 * ```
 */
export type Infer<S> = S extends StringSchema ? string
  : S extends NumericSchema ? number
  : S extends BooleanSchema ? boolean
  : S extends EnumSchema<infer V> ? V[number]
  : S extends ArraySchema<infer I> ? Infer<I>[]
  : S extends ObjectSchema<infer R, infer O> ? Simplify<
      & { -readonly [K in keyof R]: Infer<R[K]> }
      & { -readonly [K in keyof O]?: Infer<O[K]> }
    >
  : never;

function bound(name: string, value: number | undefined, integer: boolean): void {
  if (value !== undefined && !(integer ? Number.isSafeInteger(value) && value >= 0 : Number.isFinite(value))) {
    throw new RangeError(
      `Cannot use ${name} as it is not a ${
        integer ? "non-negative integer" : "finite number"
      }: current value is ${value}`,
    );
  }
}

function ordered(what: string, min: number | undefined, max: number | undefined): void {
  if (min !== undefined && max !== undefined && min > max) {
    throw new RangeError(`Cannot build ${what} schema as minimum ${min} exceeds maximum ${max}`);
  }
}

/** Drops `undefined` options so a schema stays minimal, comparable JSON. */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function object<R extends Record<string, Schema>>(required: R): ObjectSchema<R, Record<never, never>>;
function object<R extends Record<string, Schema>, O extends Record<string, Schema>>(
  required: R,
  optional: O,
): ObjectSchema<R, O>;
function object(required: Record<string, Schema>, optional: Record<string, Schema> = {}): ObjectSchema {
  const both = Object.keys(required).filter((k) => Object.hasOwn(optional, k));
  if (both.length > 0) {
    throw new TypeError(`Cannot build an object schema as ${both.join(", ")} is both required and optional`);
  }
  return { kind: "object", required, optional };
}

/**
 * The builders in {@linkcode s}.
 *
 * @example Builders passed where they are needed
 * ```ts
 * import { s, type SchemaBuilders } from "./schema.ts";
 * const money = (b: SchemaBuilders) =>
 *   b.object({ cents: b.integer({ minimum: 0 }), currency: b.enum(["EUR", "USD"]) });
 * const Money = money(s);
 * ```
 */
export interface SchemaBuilders {
  /** A string; `pattern` is the source of a `u`-flag regular expression. */
  string(options?: { pattern?: string; minLength?: number; maxLength?: number }): StringSchema;
  /** A safe integer within `[minimum, maximum]`. */
  integer(options?: { minimum?: number; maximum?: number }): NumericSchema;
  /** A finite number within `[minimum, maximum]`. */
  number(options?: { minimum?: number; maximum?: number }): NumericSchema;
  /** `true` or `false`. */
  boolean(): BooleanSchema;
  /** One of `values`. */
  enum<const V extends readonly Literal[]>(values: V): EnumSchema<V>;
  /** Exactly `value`: an enum of one. */
  literal<const V extends Literal>(value: V): EnumSchema<readonly [V]>;
  /** An array of `items`. */
  array<I extends Schema>(items: I, options?: { minItems?: number; maxItems?: number }): ArraySchema<I>;
  /** An object with `required` and (absent or matching) `optional` properties; others are ignored. */
  object: typeof object;
}

/**
 * Schema builders. Arguments are checked when the schema is built, so a bad bound fails at import time.
 *
 * @example An order event
 * ```ts
 * import { s } from "./schema.ts";
 * const OrderCreated = s.object(
 *   {
 *     orderId: s.string({ minLength: 1 }),
 *     items: s.array(s.object({ sku: s.string(), quantity: s.integer({ minimum: 1 }) }), { maxItems: 50 }),
 *     currency: s.enum(["EUR", "USD"]),
 *   },
 *   { note: s.string({ maxLength: 200 }) },
 * );
 * ```
 */
export const s: SchemaBuilders = {
  /** A string; `pattern` is the source of a `u`-flag regular expression. */
  string(options: { pattern?: string; minLength?: number; maxLength?: number } = {}): StringSchema {
    bound("minLength", options.minLength, true);
    bound("maxLength", options.maxLength, true);
    ordered("string", options.minLength, options.maxLength);
    if (options.pattern !== undefined) new RegExp(options.pattern, "u");
    return defined({ kind: "string", ...options });
  },
  /** A safe integer within `[minimum, maximum]`. */
  integer(options: { minimum?: number; maximum?: number } = {}): NumericSchema {
    bound("minimum", options.minimum, false);
    bound("maximum", options.maximum, false);
    ordered("integer", options.minimum, options.maximum);
    return defined({ kind: "integer", ...options });
  },
  /** A finite number within `[minimum, maximum]`. */
  number(options: { minimum?: number; maximum?: number } = {}): NumericSchema {
    bound("minimum", options.minimum, false);
    bound("maximum", options.maximum, false);
    ordered("number", options.minimum, options.maximum);
    return defined({ kind: "number", ...options });
  },
  /** `true` or `false`. */
  boolean(): BooleanSchema {
    return { kind: "boolean" };
  },
  /** One of `values`. */
  enum<const V extends readonly Literal[]>(values: V): EnumSchema<V> {
    if (values.length === 0) throw new RangeError("Cannot build an enum schema as it has no values");
    return { kind: "enum", values };
  },
  /** Exactly `value`: an enum of one. */
  literal<const V extends Literal>(value: V): EnumSchema<readonly [V]> {
    return { kind: "enum", values: [value] as const };
  },
  /** An array of `items`. */
  array<I extends Schema>(items: I, options: { minItems?: number; maxItems?: number } = {}): ArraySchema<I> {
    bound("minItems", options.minItems, true);
    bound("maxItems", options.maxItems, true);
    ordered("array", options.minItems, options.maxItems);
    return defined({ kind: "array", items, ...options });
  },
  /** An object with `required` and (absent or matching) `optional` properties; others are ignored. */
  object,
};

/**
 * One violation: where (a JSON pointer into the value, `""` for the value itself) and why.
 *
 * @example List where a payload went wrong
 * ```ts
 * import { s, type SchemaViolation, validate } from "./schema.ts";
 * const result = validate(s.object({ total: s.integer() }), { total: "5" });
 * const errors: SchemaViolation[] = result.ok ? [] : result.errors;
 * errors.map((e) => e.path); // ["/total"]
 * ```
 */
export interface SchemaViolation {
  path: string;
  reason: string;
}

/**
 * What {@linkcode validate} found.
 *
 * @example Branch on the result
 * ```ts
 * import { s, validate, type ValidationResult } from "./schema.ts";
 * const result: ValidationResult = validate(s.string(), 42);
 * if (!result.ok) console.log(result.errors[0].reason);
 * ```
 */
export type ValidationResult = { ok: true } | { ok: false; errors: SchemaViolation[] };

const patterns = new Map<string, RegExp>();

function pointer(path: string, key: string | number): string {
  return `${path}/${String(key).replaceAll("~", "~0").replaceAll("/", "~1")}`;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `${typeof value} ${JSON.stringify(value)}`;
}

function check(schema: Schema, value: unknown, path: string, errors: SchemaViolation[]): void {
  const fail = (reason: string) => errors.push({ path, reason });
  switch (schema.kind) {
    case "string": {
      if (typeof value !== "string") return void fail(`must be a string, is ${describe(value)}`);
      const length = [...value].length;
      if (schema.minLength !== undefined && length < schema.minLength) {
        fail(`must be at least ${schema.minLength} characters long, is ${length}`);
      }
      if (schema.maxLength !== undefined && length > schema.maxLength) {
        fail(`must be at most ${schema.maxLength} characters long, is ${length}`);
      }
      if (schema.pattern !== undefined) {
        let re = patterns.get(schema.pattern);
        if (!re) patterns.set(schema.pattern, re = new RegExp(schema.pattern, "u"));
        if (!re.test(value)) fail(`must match /${schema.pattern}/`);
      }
      return;
    }
    case "integer":
    case "number": {
      const ok = schema.kind === "integer" ? Number.isSafeInteger(value) : Number.isFinite(value);
      if (!ok) {
        return void fail(`must be ${schema.kind === "integer" ? "an integer" : "a number"}, is ${describe(value)}`);
      }
      const n = value as number;
      if (schema.minimum !== undefined && n < schema.minimum) fail(`must be at least ${schema.minimum}, is ${n}`);
      if (schema.maximum !== undefined && n > schema.maximum) fail(`must be at most ${schema.maximum}, is ${n}`);
      return;
    }
    case "boolean":
      if (typeof value !== "boolean") fail(`must be a boolean, is ${describe(value)}`);
      return;
    case "enum":
      if (!schema.values.includes(value as Literal)) {
        fail(`must be one of ${schema.values.map((v) => JSON.stringify(v)).join(", ")}, is ${describe(value)}`);
      }
      return;
    case "array": {
      if (!Array.isArray(value)) return void fail(`must be an array, is ${describe(value)}`);
      if (schema.minItems !== undefined && value.length < schema.minItems) {
        fail(`must hold at least ${schema.minItems} items, holds ${value.length}`);
      }
      if (schema.maxItems !== undefined && value.length > schema.maxItems) {
        fail(`must hold at most ${schema.maxItems} items, holds ${value.length}`);
      }
      value.forEach((item, i) => check(schema.items, item, pointer(path, i), errors));
      return;
    }
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return void fail(`must be an object, is ${describe(value)}`);
      }
      const o = value as Record<string, unknown>;
      for (const [key, sub] of Object.entries(schema.required)) {
        if (!Object.hasOwn(o, key) || o[key] === undefined) {
          errors.push({ path: pointer(path, key), reason: "is required" });
        } else check(sub, o[key], pointer(path, key), errors);
      }
      for (const [key, sub] of Object.entries(schema.optional)) {
        if (Object.hasOwn(o, key) && o[key] !== undefined) check(sub, o[key], pointer(path, key), errors);
      }
    }
  }
}

/**
 * Checks `value` against `schema` and lists every violation (not just the first), each at a JSON pointer.
 *
 * @example
 * ```ts
 * import { s, validate } from "./schema.ts";
 * import assert from "node:assert/strict";
 * const Item = s.object({ sku: s.string(), quantity: s.integer({ minimum: 1 }) });
 * assert.deepEqual(validate(Item, { sku: "kettle", quantity: 0 }), {
 *   ok: false,
 *   errors: [{ path: "/quantity", reason: "must be at least 1, is 0" }],
 * });
 * ```
 */
export function validate(schema: Schema, value: unknown): ValidationResult {
  const errors: SchemaViolation[] = [];
  check(schema, value, "", errors);
  return errors.length === 0 ? { ok: true } : { ok: false, errors };
}

/**
 * Whether `value` matches `schema`, as a type guard.
 *
 * @example
 * ```ts
 * import { is, s } from "./schema.ts";
 * const Sku = s.string({ pattern: "^[a-z-]+$" });
 * const input: unknown = "kettle";
 * if (is(Sku, input)) console.log(input.toUpperCase());
 * ```
 */
export function is<S extends Schema>(schema: S, value: unknown): value is Infer<S> {
  return validate(schema, value).ok;
}
