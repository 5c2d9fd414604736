/**
 * Shared by the HTTP benchmarks (`bench_auth.ts`, `bench_http.ts`): running wrk and reading its figures, medians,
 * machine facts, and replacing one section of docs/performance.md.
 */

/** One wrk run. */
export interface WrkResult {
  /** Completed requests per second. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Completed requests. */
  requests: number;
}

/**
 * wrk's `done` callback in Lua: prints one JSON line with the figures {@linkcode wrk} reads. Append it to a wrk
 * script after the `request` function or header set-up.
 */
export const WRK_DONE_LUA = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"non2xx":%d,"errors":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
`;

/**
 * Runs wrk (1 thread, `connections` connections) against `url` with `script`, whose `done` must be
 * {@linkcode WRK_DONE_LUA}. Throws on any non-2xx answer or socket error.
 */
export async function wrk(url: string, script: string, seconds: number, connections: number): Promise<WrkResult> {
  const out = await run("wrk", ["-t1", `-c${connections}`, `-d${seconds}s`, "-s", script, url]);
  const line = out.split("\n").find((l) => l.startsWith('{"requests"'));
  if (!line) throw new Error(`Cannot read wrk's output:\n${out}`);
  const s = JSON.parse(line);
  if (s.non2xx > 0 || s.errors > 0) {
    throw new Error(`wrk saw ${s.non2xx} non-2xx answers and ${s.errors} socket errors against ${url}`);
  }
  return {
    rps: s.requests / (s.durationUs / 1e6),
    p50Ms: s.p50Us / 1000,
    p99Ms: s.p99Us / 1000,
    requests: s.requests,
  };
}

/** wrk's version line, or `undefined` when wrk is not installed. */
export function wrkVersion(): Promise<string | undefined> {
  return run("wrk", ["-v"]).catch(() => undefined);
}

/** Runs `cmd` to completion; stdout and stderr together, trimmed. Throws on a non-zero exit. */
export async function run(cmd: string, argv: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(cmd, { args: argv, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  // `wrk -v` prints its version and usage, then exits 1.
  if (code !== 0 && !(cmd === "wrk" && argv[0] === "-v")) throw new Error(`${cmd} exited ${code}:\n${text}`);
  return text.trim();
}

/** The middle element (the upper one of an even count). */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Load average over 1/5/15 minutes, as "a b c". */
export async function loadavg(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3).join(" ");
}

/** The CPU model name, or "?". */
export async function cpuModel(): Promise<string> {
  return (await Deno.readTextFile("/proc/cpuinfo").catch(() => "")).match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
}

/**
 * Replaces the section starting with `heading` (up to the next `## ` heading) in docs/performance.md with `section`,
 * or appends it when absent; then formats the file. Returns the file's path.
 */
export async function writePerformanceSection(heading: string, section: string): Promise<string> {
  const path = new URL("../docs/performance.md", import.meta.url);
  const existing = await Deno.readTextFile(path).catch(() => "# Performance\n");
  const start = existing.indexOf(heading);
  let next = start < 0 ? -1 : existing.indexOf("\n## ", start + 1);
  if (next >= 0) next += 1;
  // The `###` subsections of the old section are written by hand (analysis, ablations): they stay, after the figures.
  const old = start < 0 ? "" : existing.slice(start, next < 0 ? undefined : next);
  const sub = old.indexOf("\n### ");
  const kept = sub < 0 ? "" : `\n${old.slice(sub + 1).trimEnd()}\n`;
  const body = `${section.trimEnd()}\n${kept}`;
  const updated = start < 0
    ? `${existing.trimEnd()}\n\n${body}`
    : `${existing.slice(0, start)}${body}${next < 0 ? "" : `\n${existing.slice(next)}`}`;
  await Deno.writeTextFile(path, updated);
  await run(Deno.execPath(), ["fmt", "--quiet", path.pathname]);
  return path.pathname;
}
