import { BinaryReader, type WireType } from "@bufbuild/protobuf/wire";

/**
 * An attribute value as OTLP carries it, flattened to JSON: a 64-bit integer becomes a number, or its exact decimal
 * string when it lies outside ±(2^53 - 1) where a number would round it; bytes become hex.
 *
 * @example Read a span's status code attribute
 * ```ts
 * import type { AttributeValue } from "./otlp.ts";
 * const code = (attributes: Record<string, AttributeValue>) => attributes["rpc.grpc.status_code"] as number;
 * ```
 */
export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [key: string]: AttributeValue };

/** One span of an OTLP export, decoded: ids as lowercase hex, times as nanosecond bigints. */
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** OTLP `SpanKind`: 1 internal, 2 server, 3 client, 4 producer, 5 consumer (0 unspecified). */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, AttributeValue>;
  events: { name: string; timeUnixNano: bigint; attributes: Record<string, AttributeValue> }[];
  links: { traceId: string; spanId: string }[];
  /** OTLP `StatusCode`: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  /** The attributes of the resource (the process) that exported it, `service.name` among them. */
  resource: Record<string, AttributeValue>;
  /** The instrumentation scope that made it (`deno` for Deno's automatic spans). */
  scope: string;
}

/**
 * Decodes an OTLP/HTTP `ExportTraceServiceRequest` body, `application/x-protobuf` or `application/json` (OTLP's JSON
 * mapping: hex ids, enums as numbers, 64-bit integers as strings). Only the fields a trace viewer needs are read;
 * unknown fields are skipped. Throws `TypeError` on a malformed body.
 */
export function decodeExport(body: Uint8Array, contentType: string): OtlpSpan[] {
  if (contentType.includes("json")) return decodeJson(JSON.parse(new TextDecoder().decode(body)));
  const out: OtlpSpan[] = [];
  fields(body, (no, r) => {
    if (no === 1) resourceSpans(r.bytes(), out);
    else return false;
  });
  return out;
}

/** Calls `each(fieldNo, reader)` per field; `each` returns false for a field it does not read (it is skipped). */
function fields(bytes: Uint8Array, each: (no: number, r: BinaryReader, type: WireType) => false | void): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, type] = r.tag();
    if (each(no, r, type) === false) r.skip(type, no);
  }
}

/** A 64-bit integer attribute: a number when exact as one, else its decimal string. */
function integer(value: bigint | string | number): number | string {
  if (typeof value === "number") return value;
  const n = BigInt(value);
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function resourceSpans(bytes: Uint8Array, out: OtlpSpan[]): void {
  let resource: Record<string, AttributeValue> = {};
  const scopes: Uint8Array[] = [];
  fields(bytes, (no, r) => {
    if (no === 1) fields(r.bytes(), (n, rr) => n === 1 ? keyValue(rr.bytes(), resource) : false);
    else if (no === 2) scopes.push(r.bytes());
    else return false;
  });
  resource = { ...resource };
  for (const scopeBytes of scopes) {
    let scope = "";
    const spans: Uint8Array[] = [];
    fields(scopeBytes, (no, r) => {
      if (no === 1) fields(r.bytes(), (n, rr) => n === 1 ? void (scope = rr.string()) : false);
      else if (no === 2) spans.push(r.bytes());
      else return false;
    });
    for (const s of spans) out.push(span(s, resource, scope));
  }
}

function span(bytes: Uint8Array, resource: Record<string, AttributeValue>, scope: string): OtlpSpan {
  const s: OtlpSpan = {
    traceId: "",
    spanId: "",
    name: "",
    kind: 0,
    startTimeUnixNano: 0n,
    endTimeUnixNano: 0n,
    attributes: {},
    events: [],
    links: [],
    status: { code: 0, message: "" },
    resource,
    scope,
  };
  fields(bytes, (no, r) => {
    switch (no) {
      case 1:
        s.traceId = hex(r.bytes());
        break;
      case 2:
        s.spanId = hex(r.bytes());
        break;
      case 4: {
        const parent = hex(r.bytes());
        if (parent) s.parentSpanId = parent;
        break;
      }
      case 5:
        s.name = r.string();
        break;
      case 6:
        s.kind = r.int32();
        break;
      case 7:
        s.startTimeUnixNano = BigInt(r.fixed64());
        break;
      case 8:
        s.endTimeUnixNano = BigInt(r.fixed64());
        break;
      case 9:
        keyValue(r.bytes(), s.attributes);
        break;
      case 11: {
        const event = { name: "", timeUnixNano: 0n, attributes: {} as Record<string, AttributeValue> };
        fields(r.bytes(), (n, rr) => {
          if (n === 1) event.timeUnixNano = BigInt(rr.fixed64());
          else if (n === 2) event.name = rr.string();
          else if (n === 3) keyValue(rr.bytes(), event.attributes);
          else return false;
        });
        s.events.push(event);
        break;
      }
      case 13: {
        const link = { traceId: "", spanId: "" };
        fields(r.bytes(), (n, rr) => {
          if (n === 1) link.traceId = hex(rr.bytes());
          else if (n === 2) link.spanId = hex(rr.bytes());
          else return false;
        });
        s.links.push(link);
        break;
      }
      case 15:
        fields(r.bytes(), (n, rr) => {
          if (n === 2) s.status.message = rr.string();
          else if (n === 3) s.status.code = rr.int32();
          else return false;
        });
        break;
      default:
        return false;
    }
  });
  return s;
}

function keyValue(bytes: Uint8Array, into: Record<string, AttributeValue>): void {
  let key = "";
  let value: AttributeValue = null;
  fields(bytes, (no, r) => {
    if (no === 1) key = r.string();
    else if (no === 2) value = anyValue(r.bytes());
    else return false;
  });
  into[key] = value;
}

function anyValue(bytes: Uint8Array): AttributeValue {
  let value: AttributeValue = null;
  fields(bytes, (no, r) => {
    switch (no) {
      case 1:
        value = r.string();
        break;
      case 2:
        value = r.bool();
        break;
      case 3:
        value = integer(r.int64());
        break;
      case 4:
        value = r.double();
        break;
      case 5: {
        const list: AttributeValue[] = [];
        fields(r.bytes(), (n, rr) => n === 1 ? void list.push(anyValue(rr.bytes())) : false);
        value = list;
        break;
      }
      case 6: {
        const map: Record<string, AttributeValue> = {};
        fields(r.bytes(), (n, rr) => n === 1 ? keyValue(rr.bytes(), map) : false);
        value = map;
        break;
      }
      case 7:
        value = hex(r.bytes());
        break;
      default:
        return false;
    }
  });
  return value;
}

// deno-lint-ignore no-explicit-any
type Json = any;

function decodeJson(body: Json): OtlpSpan[] {
  if (typeof body !== "object" || body === null) throw new TypeError("Cannot decode OTLP JSON: not an object");
  const out: OtlpSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = jsonAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      const scope = String(ss.scope?.name ?? "");
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: String(s.traceId ?? "").toLowerCase(),
          spanId: String(s.spanId ?? "").toLowerCase(),
          parentSpanId: s.parentSpanId ? String(s.parentSpanId).toLowerCase() : undefined,
          name: String(s.name ?? ""),
          kind: Number(s.kind ?? 0),
          startTimeUnixNano: BigInt(s.startTimeUnixNano ?? 0),
          endTimeUnixNano: BigInt(s.endTimeUnixNano ?? 0),
          attributes: jsonAttributes(s.attributes),
          events: (s.events ?? []).map((e: Json) => ({
            name: String(e.name ?? ""),
            timeUnixNano: BigInt(e.timeUnixNano ?? 0),
            attributes: jsonAttributes(e.attributes),
          })),
          links: (s.links ?? []).map((l: Json) => ({ traceId: String(l.traceId), spanId: String(l.spanId) })),
          status: { code: Number(s.status?.code ?? 0), message: String(s.status?.message ?? "") },
          resource,
          scope,
        });
      }
    }
  }
  return out;
}

function jsonAttributes(list: Json): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const kv of list ?? []) out[String(kv.key)] = jsonValue(kv.value);
  return out;
}

function jsonValue(v: Json): AttributeValue {
  if (!v || typeof v !== "object") return null;
  if ("stringValue" in v) return String(v.stringValue);
  if ("boolValue" in v) return Boolean(v.boolValue);
  if ("intValue" in v) return integer(v.intValue);
  if ("doubleValue" in v) return Number(v.doubleValue);
  if ("arrayValue" in v) return (v.arrayValue?.values ?? []).map(jsonValue);
  if ("kvlistValue" in v) return jsonAttributes(v.kvlistValue?.values);
  if ("bytesValue" in v) return String(v.bytesValue);
  return null;
}
