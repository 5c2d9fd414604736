import { type Command, stringFlag, UsageError } from "../command.ts";
import { SERVICE_NAMES, type ServiceName } from "../context.ts";
import { spinWhile } from "../progress.ts";
import { describe } from "../table.ts";

export const reconcile: Command = {
  path: ["reconcile"],
  summary: "Runs the reconciliation checks and prints the drift found; --repair also repairs it.",
  flags: {
    repair: { type: "boolean", description: "repair what is found (idempotent); without it nothing changes" },
    last: { type: "boolean", description: "show the last run's report instead of running" },
    service: { type: "string", value: "name", description: "the service running reconciliation (default orders)" },
  },
  async run(cli, input) {
    const service = (stringFlag(input, "service") ?? "orders") as ServiceName;
    if (!SERVICE_NAMES.includes(service)) {
      throw new UsageError(`--service must be one of ${SERVICE_NAMES.join(", ")}, got ${service}`);
    }
    if (input.values.last === true && input.values.repair === true) {
      throw new UsageError("--last shows a report; it cannot be combined with --repair");
    }
    const report = input.values.last === true ? await cli.call(service, "/admin/reconcile/last") : await spinWhile(
      input.values.repair === true ? "reconcile --repair" : "reconcile",
      cli.call(service, "/admin/reconcile", { method: "POST", body: { repair: input.values.repair === true } }),
    );
    if (cli.json) cli.printJson(report);
    else cli.print(describe(report));
    return 0;
  },
};
