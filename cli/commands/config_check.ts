import { loadConfig } from "../../services/shared/config.ts";
import type { Command } from "../command.ts";

/**
 * Every problem the services' configuration loaders find in `env`, one message each. The loader stops at its first
 * bad value, so each problem found is set aside and the loader run again until it passes.
 */
export async function configProblems(env: Record<string, string | undefined>): Promise<string[]> {
  // Loaded on demand: the distributed wiring pulls in every broker client, which the other commands do not need.
  const { distributedOptionsFromEnv } = await import("../../services/shared/distributed.ts");
  const { createLogger } = await import("@trellis/platform/log");
  const problems: string[] = [];
  const trial = { ...env };
  const loaders = [
    () => loadConfig(trial),
    () => distributedOptionsFromEnv(trial, "trellis-cli", createLogger("trellis", { write: () => {} })),
  ];
  for (const load of loaders) {
    // One pass per variable at most: every problem names the variable it came from, which is then dropped.
    for (let i = 0; i <= Object.keys(env).length; i++) {
      try {
        load();
        break;
      } catch (err) {
        const message = (err as Error).message;
        if (problems.includes(message)) break;
        problems.push(message);
        const name = Object.keys(trial).filter((k) => /^\w+$/.test(k) && new RegExp(`\\b${k}\\b`).test(message))
          .sort((a, b) => b.length - a.length)[0];
        if (name === undefined) break;
        delete trial[name];
      }
    }
  }
  return problems;
}

export const configCheck: Command = {
  path: ["config", "check"],
  summary: "Runs the services' configuration loader over the environment (and --env-file); one line per problem.",
  details: ["Exits 1 when any value is bad. Secrets are never printed."],
  async run(cli) {
    const problems = await configProblems(cli.env);
    if (cli.json) cli.printJson({ ok: problems.length === 0, problems });
    else if (problems.length === 0) cli.print("configuration ok");
    else for (const p of problems) cli.print(p);
    return problems.length === 0 ? 0 : 1;
  },
};
