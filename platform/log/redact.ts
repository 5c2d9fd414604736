/** What a redacted value is replaced with. */
export const REDACTED = "[REDACTED]";

/**
 * Field names whose values are secrets, wherever they appear in a log line's fields (nested objects too): HTTP
 * credentials, passwords, tokens, client secrets, API and private keys.
 */
const SECRET_FIELD =
  /authorization|cookie|passw(?:or)?d|secret|token|credential|api[-_]?key|private[-_]?key|encryption[-_]?key|^kek$/i;

/** A JWT (three base64url parts, the first a JSON header) or a bearer credential, wherever it sits in a line. */
const TOKEN_TEXT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*|(Bearer|Basic)\s+[A-Za-z0-9._~+/-]+=*/g;

/** Known secret values and their JSON-escaped forms, longest first so one containing another is replaced whole. */
let known: string[] = [];

/** Values shorter than this are not registered: replacing them would mangle ordinary text. */
const MIN_SECRET_LENGTH = 6;

/**
 * Registers a secret value (a client secret, a key, a password read from configuration) so that no log line carries
 * it: every line written by a {@linkcode createLogger} logger has each occurrence replaced by `[REDACTED]`, in any
 * field, message or error text. `secret()` of `@trellis/platform/config` registers every value it reads; values
 * shorter than 6 characters are ignored (they would match ordinary text).
 *
 * @example Keep a database password out of the logs
 * ```ts
 * import { createLogger, registerSecret } from "./mod.ts";
 * registerSecret("hunter2-but-longer");
 * const lines: string[] = [];
 * createLogger("orders", { level: "info", write: (l) => lines.push(l) }).info("connecting", { url: "postgres://u:hunter2-but-longer@db" });
 * lines[0].includes("hunter2-but-longer"); // false
 * ```
 */
export function registerSecret(value: string): void {
  if (typeof value !== "string" || value.length < MIN_SECRET_LENGTH) return;
  const forms = new Set([value, JSON.stringify(value).slice(1, -1)]);
  for (const form of forms) if (!known.includes(form)) known.push(form);
  known = known.toSorted((a, b) => b.length - a.length);
  suspect = suspectPattern();
}

/** One pass over a line finds whether anything in it may need redacting (most lines: nothing). */
let suspect = suspectPattern();

function suspectPattern(): RegExp {
  const escaped = known.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(["eyJ", "Bearer", "Basic", ...escaped].join("|"));
}

/** Field names seen, and whether each names a secret: lines reuse a few names, so each is matched once. */
const secretFieldCache = new Map<string, boolean>();

function isSecretField(name: string): boolean {
  let secret = secretFieldCache.get(name);
  if (secret === undefined) {
    secret = SECRET_FIELD.test(name);
    // Bounded, should a caller use data as field names.
    if (secretFieldCache.size < 10_000) secretFieldCache.set(name, secret);
  }
  return secret;
}

/** A copy of `fields` with the values of secret-named fields replaced, nested plain objects and arrays included. */
export function redactFields(fields: Record<string, unknown>, depth = 0): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const k in fields) {
    const v = fields[k];
    let r = v;
    if (isSecretField(k) && v !== undefined && v !== null && v !== "") r = REDACTED;
    else if (depth < 4 && typeof v === "object" && v !== null) r = redactNested(v, depth + 1);
    if (r !== v) {
      out ??= { ...fields };
      out[k] = r;
    }
  }
  return out ?? fields;
}

function redactNested(v: object, depth: number): unknown {
  if (Array.isArray(v)) {
    let changed = false;
    const items = v.map((item) => {
      const r = typeof item === "object" && item !== null ? redactNested(item, depth + 1) : item;
      if (r !== item) changed = true;
      return r;
    });
    return changed ? items : v;
  }
  if (v instanceof Headers) return redactFields(Object.fromEntries(v), depth);
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return v;
  return redactFields(v as Record<string, unknown>, depth);
}

/** `line` with every registered secret value and every token-like text replaced. */
export function redactText(line: string): string {
  if (!suspect.test(line)) return line;
  for (const secret of known) if (line.includes(secret)) line = line.replaceAll(secret, REDACTED);
  return line.replace(TOKEN_TEXT, (_m, scheme?: string) => scheme ? `${scheme} ${REDACTED}` : REDACTED);
}
