/**
 * `trellis`: the operator's command line for a running Trellis system (`deno task trellis <command>`, or a binary
 * from `deno compile -A -o trellis cli/trellis.ts`). Run `trellis --help` for the commands.
 *
 * @module
 */
import { type Command, helpOf, parseInput, UsageError } from "./command.ts";
import { Cli, reason } from "./context.ts";
import { configCheck } from "./commands/config_check.ts";
import { dlqList, dlqPurge, dlqRedrive, dlqShow } from "./commands/dlq.ts";
import { health } from "./commands/health.ts";
import { keysList, keysRotate } from "./commands/keys.ts";
import { migrateStatus, migrateUp } from "./commands/migrate.ts";
import { ordersShow } from "./commands/orders.ts";
import { reconcile } from "./commands/reconcile.ts";
import { top } from "./top/command.ts";

/** Every command of the CLI. */
export const COMMANDS: readonly Command[] = [
  health,
  top,
  migrateStatus,
  migrateUp,
  dlqList,
  dlqShow,
  dlqRedrive,
  dlqPurge,
  reconcile,
  ordersShow,
  keysList,
  keysRotate,
  configCheck,
];

/** The top-level `--help`. */
export function overview(commands: readonly Command[] = COMMANDS): string {
  const rows = commands.map((c) => [c.path.join(" "), c.summary]);
  const width = Math.max(...rows.map(([n]) => n.length));
  return [
    "Usage: trellis <command> [flags]",
    "",
    "Operate a running Trellis system: readiness, migrations, dead letters, reconciliation, orders, keys, config.",
    "",
    "Commands:",
    ...rows.map(([n, s]) => `  ${n.padEnd(width)}  ${s}`),
    "",
    "Every command takes --help, --json, --url name=url and --env-file path. Exit codes: 0 ok, 1 failed, 2 bad input,",
    "3 drift found (reconcile without --repair).",
  ].join("\n");
}

/** Finds the command `argv` names (its longest matching path) and the arguments after it. */
function resolve(argv: string[]): { command?: Command; group?: string; rest: string[] } {
  const words = argv.slice(0, 2);
  for (const n of [2, 1]) {
    const command = COMMANDS.find((c) => c.path.length === n && c.path.every((p, i) => p === words[i]));
    if (command) return { command, rest: argv.slice(n) };
  }
  const group = COMMANDS.some((c) => c.path.length > 1 && c.path[0] === argv[0]) ? argv[0] : undefined;
  return { group, rest: argv.slice(1) };
}

/** Runs the CLI on `argv`; resolves the exit code. Errors are printed as one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  const fail = (message: string, code: number) => {
    console.error(`trellis: ${message}`);
    return code;
  };
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    console.log(overview());
    return argv.length === 0 ? 2 : 0;
  }
  const { command, group, rest } = resolve(argv);
  if (!command) {
    if (group) {
      const subs = COMMANDS.filter((c) => c.path[0] === group);
      if (rest[0] === undefined || rest[0] === "--help" || rest[0] === "-h") {
        console.log(overview(subs));
        return rest[0] === undefined ? 2 : 0;
      }
      return fail(
        `unknown command "${group} ${rest[0]}" (one of: ${
          subs.map((c) => c.path[1]).join(", ")
        }); see trellis ${group} --help`,
        2,
      );
    }
    return fail(`unknown command "${argv[0]}"; see trellis --help`, 2);
  }
  try {
    const input = parseInput(command, rest);
    if (input.values.help) {
      console.log(helpOf(command));
      return 0;
    }
    return await command.run(await Cli.create(input), input);
  } catch (err) {
    if (err instanceof UsageError) return fail(`${err.message}; see trellis ${command.path.join(" ")} --help`, 2);
    return fail(reason(err), 1);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
