/** One sample of the Prometheus text format: `name{label="value",...} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/g;

/**
 * Parses the Prometheus text exposition format (what `/metrics` serves): one {@linkcode Sample} per sample line,
 * comments and `# HELP`/`# TYPE` lines skipped, label values unescaped, `NaN`/`+Inf`/`-Inf` as numbers. A line that
 * is not a sample is skipped rather than failing the whole scrape.
 */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[2]) {
      for (const l of m[2].matchAll(LABEL)) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      }
    }
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    out.push({ name: m[1], labels, value });
  }
  return out;
}

/** The sum of the samples named `name` whose labels pass `where`; `undefined` when there is no such sample. */
export function sum(
  samples: readonly Sample[],
  name: string | RegExp,
  where: (l: Record<string, string>) => boolean = () => true,
): number | undefined {
  let total: number | undefined;
  for (const s of samples) {
    const match = typeof name === "string" ? s.name === name : name.test(s.name);
    if (match && where(s.labels) && Number.isFinite(s.value)) total = (total ?? 0) + s.value;
  }
  return total;
}
