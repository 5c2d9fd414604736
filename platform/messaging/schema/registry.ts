import type { Message, OutgoingMessage } from "../message.ts";
import {
  type EnumSchema,
  type Infer,
  type ObjectSchema,
  type Schema,
  type SchemaViolation,
  validate,
} from "./schema.ts";

/**
 * Header naming a message's type (e.g. `orders.created.v1`); set by {@linkcode encodeMessage}.
 *
 * @example Route on the type without decoding the payload
 * ```ts
 * import { MESSAGE_TYPE_HEADER } from "./registry.ts";
 * const headers: Record<string, string> = { [MESSAGE_TYPE_HEADER]: "orders.created.v1" };
 * headers[MESSAGE_TYPE_HEADER].endsWith(".v1"); // true
 * ```
 */
export const MESSAGE_TYPE_HEADER = "message-type";
/**
 * Content type of every message {@linkcode encodeMessage} builds.
 *
 * @example Tell a JSON message from another
 * ```ts
 * import { JSON_CONTENT_TYPE } from "./registry.ts";
 * const isJson = (headers: Record<string, string>) => headers["content-type"] === JSON_CONTENT_TYPE;
 * ```
 */
export const JSON_CONTENT_TYPE = "application/json";

/**
 * A versioned message type: its name (ending in `.vN`) and the schema of its JSON payload, which always includes a
 * `type` property holding the name.
 *
 * @example Accept any version of an event
 * ```ts
 * import { defineMessageType, type MessageType } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const schema = s.object({ orderId: s.string() });
 * const OrderCreated: MessageType = defineMessageType({ type: "orders.created.v1", schema });
 * OrderCreated.type; // "orders.created.v1"
 * ```
 */
export interface MessageType<
  T extends string = string,
  S extends ObjectSchema = ObjectSchema,
> {
  readonly type: T;
  readonly schema: S;
}

/**
 * The payload type of a message type.
 *
 * @example A handler typed by its event
 * ```ts
 * import { defineMessageType, type MessageOf } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const PaymentFailed = defineMessageType({ type: "payments.failed.v1", schema: s.object({ reason: s.string() }) });
 * const onFailed = (event: MessageOf<typeof PaymentFailed>) => console.log(event.type, event.reason);
 * ```
 */
export type MessageOf<M> = M extends MessageType<string, infer S> ? Infer<S> : never;

type WithType<T extends string, S extends ObjectSchema> = S extends ObjectSchema<infer R, infer O>
  ? ObjectSchema<{ type: EnumSchema<readonly [T]> } & R, O>
  : never;

const TYPE_NAME = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*\.v[1-9][0-9]*$/;

/**
 * Declares a message type. The `type` property (the literal name) is added to the schema's required properties.
 *
 * @example
 * ```ts
 * import { defineMessageType, type MessageOf } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const OrderCreated = defineMessageType({
 *   type: "orders.created.v1",
 *   schema: s.object({ orderId: s.string({ minLength: 1 }) }),
 * });
 * const event: MessageOf<typeof OrderCreated> = { type: "orders.created.v1", orderId: "o-1" };
 * ```
 */
export function defineMessageType<const T extends string, S extends ObjectSchema>(
  definition: { type: T; schema: S },
): MessageType<T, WithType<T, S>> {
  const { type, schema } = definition;
  if (!TYPE_NAME.test(type)) {
    throw new TypeError(
      `Cannot define a message type as its name is not dotted lowercase ending in .vN: current value is ${
        JSON.stringify(type)
      }`,
    );
  }
  if (Object.hasOwn(schema.required, "type") || Object.hasOwn(schema.optional, "type")) {
    throw new TypeError(`Cannot define message type ${type} as its schema declares "type" itself`);
  }
  const required = { type: { kind: "enum", values: [type] }, ...schema.required };
  return { type, schema: { kind: "object", required, optional: schema.optional } as unknown as WithType<T, S> };
}

/**
 * A set of message types, looked up by name.
 *
 * @example List the types a service publishes
 * ```ts
 * import { createMessageRegistry, defineMessageType, type MessageRegistry } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const registry: MessageRegistry = createMessageRegistry([
 *   defineMessageType({ type: "orders.created.v1", schema: s.object({ orderId: s.string() }) }),
 * ]);
 * [...registry.types.keys()]; // ["orders.created.v1"]
 * ```
 */
export interface MessageRegistry<M extends MessageType = MessageType> {
  readonly types: ReadonlyMap<string, M>;
}

/**
 * Builds a registry; a name may appear once.
 *
 * @example
 * ```ts
 * import { createMessageRegistry, defineMessageType } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const registry = createMessageRegistry([
 *   defineMessageType({ type: "orders.created.v1", schema: s.object({ orderId: s.string() }) }),
 *   defineMessageType({ type: "orders.cancelled.v1", schema: s.object({ orderId: s.string(), reason: s.string() }) }),
 * ]);
 * ```
 */
export function createMessageRegistry<const M extends MessageType>(types: readonly M[]): MessageRegistry<M> {
  const map = new Map<string, M>();
  for (const t of types) {
    if (map.has(t.type)) throw new TypeError(`Cannot register message type ${t.type} twice`);
    map.set(t.type, t);
  }
  return { types: map };
}

/**
 * A message that does not match its schema (or has no known type). Retrying cannot help: consumers should recognise
 * it (`err instanceof SchemaError` or `err.retryable === false`) and dead-letter or drop the message.
 *
 * @example
 * ```ts
 * import { SchemaError } from "./registry.ts";
 * function retryable(err: unknown): boolean {
 *   return !(err instanceof SchemaError);
 * }
 * ```
 */
export class SchemaError extends Error {
  /** Always false: the same bytes fail the same way every time. */
  readonly retryable = false;
  /**
   * @param type The message type checked against, or what arrived when it is not an expected type.
   * @param errors Every violation found.
   */
  constructor(readonly type: string, readonly errors: SchemaViolation[], options?: ErrorOptions) {
    super(
      `Message of type ${type} does not match its schema: ${
        errors.map((e) => `${e.path || "(root)"} ${e.reason}`).join("; ")
      }`,
      options,
    );
    this.name = "SchemaError";
  }
}

function lookup<M extends MessageType>(registry: MessageRegistry<M>, value: unknown): M {
  const type = (value as { type?: unknown } | null)?.type;
  const found = typeof type === "string" ? registry.types.get(type) : undefined;
  if (!found) {
    throw new SchemaError(String(JSON.stringify(type)), [{
      path: "/type",
      reason: `must be a registered message type, is ${JSON.stringify(type)}`,
    }]);
  }
  return found;
}

/**
 * Validates `value` against the schema of its `type` and returns that message type; throws {@linkcode SchemaError}
 * otherwise. Internal: {@linkcode encodeMessage} is the one way to produce a message, so a payload is never sent
 * validated one way and serialised another.
 */
function assertMessage<M extends MessageType>(registry: MessageRegistry<M>, value: MessageOf<M>): M {
  const type = lookup(registry, value);
  const result = validate(type.schema as Schema, value);
  if (!result.ok) throw new SchemaError(type.type, result.errors);
  return type;
}

/** The headers {@linkcode encodeMessage} sets; internal so message headers are built in one place only. */
function messageHeaders(type: string): Record<string, string> {
  return { "content-type": JSON_CONTENT_TYPE, [MESSAGE_TYPE_HEADER]: type };
}

/**
 * Validates `value` and encodes it as a JSON message with `content-type` and `message-type` headers (which override
 * the same headers in `options.headers`).
 *
 * @example
 * ```ts
 * import { createMessageRegistry, defineMessageType, encodeMessage } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const registry = createMessageRegistry([
 *   defineMessageType({ type: "orders.created.v1", schema: s.object({ orderId: s.string() }) }),
 * ]);
 * const msg = encodeMessage(registry, { type: "orders.created.v1", orderId: "o-1" }, { key: "o-1" });
 * console.log(msg.headers?.["message-type"]); // "orders.created.v1"
 * ```
 */
export function encodeMessage<M extends MessageType>(
  registry: MessageRegistry<M>,
  value: MessageOf<M>,
  options: Omit<OutgoingMessage, "payload"> = {},
): OutgoingMessage {
  const type = assertMessage(registry, value);
  return {
    ...options,
    headers: { ...options.headers, ...messageHeaders(type.type) },
    payload: new TextEncoder().encode(JSON.stringify(value)),
  };
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses a JSON message, checks its type is one of `expected` (and agrees with a `message-type` header when there is
 * one) and validates it against that type's schema. Throws {@linkcode SchemaError} naming the type and every path
 * that failed; unknown properties are ignored, not rejected.
 *
 * @example
 * ```ts
 * import { createMessageRegistry, decodeMessage, defineMessageType, encodeMessage } from "./registry.ts";
 * import { s } from "./schema.ts";
 * const registry = createMessageRegistry([
 *   defineMessageType({ type: "orders.created.v1", schema: s.object({ orderId: s.string() }) }),
 *   defineMessageType({ type: "orders.cancelled.v1", schema: s.object({ orderId: s.string(), reason: s.string() }) }),
 * ]);
 * const msg = encodeMessage(registry, { type: "orders.cancelled.v1", orderId: "o-1", reason: "no stock" });
 * const event = decodeMessage(registry, { headers: msg.headers ?? {}, payload: msg.payload }, ["orders.cancelled.v1"]);
 * console.log(event.reason);
 * ```
 */
export function decodeMessage<M extends MessageType, const T extends M["type"]>(
  registry: MessageRegistry<M>,
  msg: Pick<Message, "headers" | "payload">,
  expected: readonly T[],
): MessageOf<Extract<M, { type: T }>> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(msg.payload));
  } catch (err) {
    throw new SchemaError(
      msg.headers[MESSAGE_TYPE_HEADER] ?? "(unknown)",
      [{ path: "", reason: "must be UTF-8 JSON" }],
      {
        cause: err,
      },
    );
  }
  const type = (value as { type?: unknown } | null)?.type;
  if (typeof type !== "string" || !(expected as readonly string[]).includes(type)) {
    throw new SchemaError(String(JSON.stringify(type)), [{
      path: "/type",
      reason: `must be one of ${expected.join(", ")}, is ${JSON.stringify(type)}`,
    }]);
  }
  const header = msg.headers[MESSAGE_TYPE_HEADER];
  if (header !== undefined && header !== type) {
    throw new SchemaError(type, [{ path: "/type", reason: `must equal the ${MESSAGE_TYPE_HEADER} header ${header}` }]);
  }
  const found = registry.types.get(type);
  if (!found) throw new SchemaError(type, [{ path: "/type", reason: "is not a registered message type" }]);
  const result = validate(found.schema as Schema, value);
  if (!result.ok) throw new SchemaError(type, result.errors);
  return value as MessageOf<Extract<M, { type: T }>>;
}
