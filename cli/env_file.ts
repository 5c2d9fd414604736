import { UsageError } from "./command.ts";

/**
 * Reads a dotenv-style file: `NAME=value` lines, `#` comments and blank lines skipped, a value in matching single or
 * double quotes taken as written inside them. A line of another shape is a `UsageError` naming the file and line.
 */
export async function readEnvFile(path: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new UsageError(`cannot read --env-file ${path}: ${(err as Error).message}`);
  }
  const env: Record<string, string> = {};
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new UsageError(`${path}:${i + 1}: expected NAME=value, got ${JSON.stringify(line)}`);
    const value = m[2];
    const quoted = /^(["'])(.*)\1$/.exec(value);
    env[m[1]] = quoted ? quoted[2] : value;
  }
  return env;
}
