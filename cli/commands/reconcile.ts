import type { ReconcileReport } from "@trellis/platform/reconcile";
import { type Command, stringFlag, UsageError } from "../command.ts";
import { type Cli, reason, RemoteError, type ServiceName } from "../context.ts";
import { Progress } from "../progress.ts";
import { table } from "../table.ts";

/** The services that run reconciliation checks, in the order a run visits them (the saga's owner first). */
export const RECONCILE_SERVICES: readonly ServiceName[] = ["orders", "inventory", "payments"];

/** Exit code of a dry run that found drift, so scripts can tell "drift" from "broken" (1) and "bad input" (2). */
export const EXIT_DRIFT = 3;

/** A service's reconciliation report, as `POST /admin/reconcile` answers it. */
export type Report = ReconcileReport;

export type Outcome = { service: ServiceName; report: Report } | { service: ServiceName; report: null; error?: string };

export const reconcile: Command = {
  path: ["reconcile"],
  summary:
    "Runs the reconciliation checks of orders, inventory and payments and prints the drift; --repair repairs it.",
  details: [
    "Without --repair nothing changes (a dry run). Each service runs its own checks; they run one service at a time,",
    "orders first, with a progress bar on a terminal.",
    "",
    "Exit codes:",
    "  0  dry run: no drift found; --repair: everything found was repaired or skipped",
    "  1  a check or a repair failed, or a service could not be asked",
    "  2  bad input",
    `  ${EXIT_DRIFT}  dry run: drift was found (run again with --repair to repair it)`,
    "--last exits as the run it shows did.",
  ],
  flags: {
    repair: { type: "boolean", description: "repair what is found (idempotent); without it nothing changes" },
    last: { type: "boolean", description: "show each service's last run's report instead of running" },
    service: {
      type: "string",
      value: "name",
      description: `only this service's checks (${RECONCILE_SERVICES.join(", ")}; default all three)`,
    },
  },
  async run(cli, input) {
    const one = stringFlag(input, "service");
    if (one !== undefined && !(RECONCILE_SERVICES as readonly string[]).includes(one)) {
      throw new UsageError(`--service must be one of ${RECONCILE_SERVICES.join(", ")}, got ${one}`);
    }
    const last = input.values.last === true;
    const repair = input.values.repair === true;
    if (last && repair) throw new UsageError("--last shows a report; it cannot be combined with --repair");
    const services = one === undefined ? RECONCILE_SERVICES : [one as ServiceName];

    const outcomes: Outcome[] = [];
    const progress = new Progress(repair ? "reconcile --repair" : "reconcile", services.length);
    try {
      for (const service of services) {
        progress.tick(0, service);
        outcomes.push(await ask(cli, service, last ? undefined : repair));
        progress.tick(1, service);
      }
    } finally {
      progress.done();
    }

    const code = exitCode(outcomes);
    if (cli.json) {
      cli.printJson({
        clean: outcomes.every((o) => o.report?.clean === true),
        reports: outcomes.map((o) => o.report ?? { service: o.service, error: "error" in o ? o.error : "no run yet" }),
      });
    } else cli.print(render(outcomes, last ? undefined : repair));
    return code;
  },
};

/** Runs (or, with `repair` undefined, fetches the last run of) one service's reconciliation. */
async function ask(cli: Cli, service: ServiceName, repair: boolean | undefined): Promise<Outcome> {
  try {
    const report = repair === undefined
      ? await cli.call(service, "/admin/reconcile/last")
      : await cli.call(service, "/admin/reconcile", { method: "POST", body: { repair } });
    return { service, report: report as Report };
  } catch (err) {
    if (repair === undefined && err instanceof RemoteError && err.status === 404) return { service, report: null };
    return { service, report: null, error: reason(err) };
  }
}

/** 1 if anything failed, else 3 if a dry run found drift, else 0. */
export function exitCode(outcomes: readonly Outcome[]): number {
  if (outcomes.some((o) => "error" in o && o.error !== undefined)) return 1;
  const reports = outcomes.flatMap((o) => o.report ? [o.report] : []);
  if (reports.some((r) => r.totals.failed > 0 || r.checks.some((c) => c.error !== undefined))) return 1;
  if (reports.some((r) => r.mode === "dry-run" && r.totals.found > 0)) return EXIT_DRIFT;
  return 0;
}

/** The reports as a table of checks per service, then the drifts, then one summary line. */
function render(outcomes: readonly Outcome[], repair: boolean | undefined): string {
  const checkRows: unknown[][] = [];
  const driftRows: unknown[][] = [];
  const problems: string[] = [];
  const totals: ReconcileReport["totals"] = { found: 0, repaired: 0, skipped: 0, failed: 0 };
  for (const o of outcomes) {
    if (!o.report) {
      problems.push("error" in o && o.error !== undefined ? `${o.service}: ${o.error}` : `${o.service}: no run yet`);
      continue;
    }
    for (const k of ["found", "repaired", "skipped", "failed"] as const) totals[k] += o.report.totals[k];
    for (const c of o.report.checks) {
      checkRows.push([o.service, c.name, c.found, c.repaired, c.skipped, c.failed]);
      if (c.error !== undefined) problems.push(`${o.service} ${c.name}: the check failed: ${c.error}`);
      for (const d of c.drifts) {
        driftRows.push([o.service, c.name, d.subject, d.outcome, d.error ? `${d.detail} (${d.error})` : d.detail]);
      }
    }
  }
  const out: string[] = [];
  if (checkRows.length > 0) {
    out.push(table(["SERVICE", "CHECK", "FOUND", "REPAIRED", "SKIPPED", "FAILED"], checkRows));
  }
  if (driftRows.length > 0) {
    out.push("", "Drift", table(["SERVICE", "CHECK", "SUBJECT", "OUTCOME", "DETAIL"], driftRows));
  }
  if (problems.length > 0) out.push("", ...problems);
  const asked = outcomes.filter((o) => o.report).length;
  const mode = repair === undefined
    ? [...new Set(outcomes.flatMap((o) => o.report ? [`last ${o.report.mode}`] : []))].join(", ") || "last run"
    : repair
    ? "repair"
    : "dry run";
  const counts =
    `found ${totals.found}, repaired ${totals.repaired}, skipped ${totals.skipped}, failed ${totals.failed}`;
  const hint = repair === false && totals.found > 0 ? "; nothing changed: run with --repair to repair it" : "";
  out.push("", `${mode} of ${asked} service${asked === 1 ? "" : "s"}: ${counts}${hint}`);
  return out.join("\n").replace(/^\n/, "");
}
