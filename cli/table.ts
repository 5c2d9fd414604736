/**
 * Lays `rows` out under `headers` in columns padded to their widest cell, two spaces apart, the last column unpadded.
 * Numbers are right-aligned.
 */
export function table(headers: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const cells = [headers.map(String), ...rows.map((r) => r.map(cell))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === "number"));
  return cells.map((r) =>
    r.map((c, i) => {
      if (i === r.length - 1 && !numeric[i]) return c;
      return numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]);
    }).join("  ").trimEnd()
  ).join("\n");
}

/** A value as one table cell: `–` for nothing, JSON for objects, the string otherwise. */
export function cell(v: unknown): string {
  if (v === undefined || v === null || v === "") return "–";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/**
 * A JSON value for a human: an object as `key: value` lines (nested objects indented), an array of objects as a
 * table of the fields they have, anything else as itself. For payloads whose shape the CLI does not know.
 */
export function describe(value: unknown, indent = ""): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return `${indent}(none)`;
    if (value.every((v) => v !== null && typeof v === "object" && !Array.isArray(v))) {
      const keys = [...new Set(value.flatMap((v) => Object.keys(v as object)))];
      return table(keys, value.map((v) => keys.map((k) => (v as Record<string, unknown>)[k])))
        .split("\n").map((l) => indent + l).join("\n");
    }
    return value.map((v) => `${indent}- ${cell(v)}`).join("\n");
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>);
    const width = Math.max(0, ...entries.map(([k]) => k.length + 1));
    return entries.map(([k, v]) =>
      v !== null && typeof v === "object" && Object.keys(v).length > 0
        ? `${indent}${k}:\n${describe(v, indent + "  ")}`
        : `${indent}${`${k}:`.padEnd(width)} ${cell(v)}`
    ).join("\n");
  }
  return indent + cell(value);
}
