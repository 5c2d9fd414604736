import { parseArgs } from "node:util";
import type { Cli } from "./context.ts";

/** A flag of a command, as `node:util` parseArgs takes it, with the line `--help` prints for it. */
export interface Flag {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** The value's placeholder in `--help` (`<n>`), for string flags. */
  value?: string;
  description: string;
}

/** The parsed input of a command: flags by name and the positional arguments. */
export interface Input {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * One command of the `trellis` CLI (`path` such as `["dlq", "redrive"]`). `run` resolves the exit code; it throws
 * {@linkcode UsageError} for bad input (exit 2) and any other error for a failure (exit 1), each printed as one line.
 */
export interface Command {
  path: readonly string[];
  summary: string;
  /** Positional arguments: `<id>` is required, `[id]` optional, a last `[id...]` takes any number. */
  args?: readonly string[];
  flags?: Record<string, Flag>;
  /** More lines for `--help`. */
  details?: readonly string[];
  run(cli: Cli, input: Input): Promise<number>;
}

/** Bad input on the command line: printed as one line with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Flags every command takes. */
export const COMMON_FLAGS: Record<string, Flag> = {
  json: { type: "boolean", description: "print JSON for scripts instead of tables" },
  help: { type: "boolean", short: "h", description: "show this help" },
  url: {
    type: "string",
    multiple: true,
    value: "name=url",
    description: "where a service answers, overriding the configuration (repeatable), e.g. orders=http://10.0.0.5:8082",
  },
  "env-file": { type: "string", value: "path", description: "read configuration from this file over the environment" },
};

/** Parses `argv` (what follows the command's path) for `command`; unknown flags and wrong arity are `UsageError`s. */
export function parseInput(command: Command, argv: string[]): Input {
  const flags = { ...COMMON_FLAGS, ...command.flags };
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: Object.fromEntries(
        Object.entries(flags).map(([name, f]) => [name, {
          type: f.type,
          ...(f.short ? { short: f.short } : {}),
          ...(f.multiple ? { multiple: true } : {}),
        }]),
      ),
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError(firstLine((err as Error).message));
  }
  const input = { values: parsed.values as Input["values"], positionals: parsed.positionals };
  if (input.values.help) return input;
  const args = command.args ?? [];
  const required = args.filter((a) => a.startsWith("<")).length;
  if (input.positionals.length < required) {
    throw new UsageError(`missing argument ${args[input.positionals.length]}`);
  }
  if (input.positionals.length > args.length && !args.at(-1)?.endsWith("...]")) {
    throw new UsageError(`unexpected argument ${JSON.stringify(input.positionals[args.length])}`);
  }
  return input;
}

/** The `--help` text of a command. */
export function helpOf(command: Command): string {
  const flags = { ...command.flags, ...COMMON_FLAGS };
  const rows = Object.entries(flags).map(([name, f]) => {
    const short = f.short ? `-${f.short}, ` : "";
    const value = f.type === "string" ? ` <${f.value ?? "value"}>` : "";
    return [`  ${short}--${name}${value}`, f.description];
  });
  const width = Math.max(...rows.map(([l]) => l.length));
  return [
    `Usage: trellis ${[...command.path, ...(command.args ?? [])].join(" ")} [flags]`,
    "",
    command.summary,
    ...(command.details ? ["", ...command.details] : []),
    "",
    "Flags:",
    ...rows.map(([l, d]) => `${l.padEnd(width)}  ${d}`),
  ].join("\n");
}

/** A string flag's value, or `undefined`. */
export function stringFlag(input: Input, name: string): string | undefined {
  const v = input.values[name];
  return typeof v === "string" ? v : undefined;
}

/** A flag's value as an integer in `[min, max]` (`fallback` when absent); anything else is a `UsageError`. */
export function intFlag(input: Input, name: string, min: number, max: number, fallback: number): number {
  const n = numberFlag(input, name, min, max, fallback);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got ${stringFlag(input, name)}`);
  return n;
}

/** A flag's value as a number in `[min, max]` (`fallback` when absent); anything else is a `UsageError`. */
export function numberFlag(input: Input, name: string, min: number, max: number, fallback: number): number {
  const raw = stringFlag(input, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || n < min || n > max) {
    throw new UsageError(`--${name} must be a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

function firstLine(s: string): string {
  return s.split("\n")[0].replace(/\. To specify a positional argument.*$/, "");
}
