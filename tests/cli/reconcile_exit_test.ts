import assert from "node:assert/strict";
import { EXIT_DRIFT, exitCode, type Outcome, type Report } from "../../cli/commands/reconcile.ts";

function report(mode: Report["mode"], found: number, repaired: number, failed: number, checkError?: string): Report {
  const totals = { found, repaired, skipped: found - repaired - failed, failed };
  return {
    service: "orders",
    mode,
    startedAt: "2026-12-05T00:00:00.000Z",
    finishedAt: "2026-12-05T00:00:00.010Z",
    durationMs: 10,
    clean: found === 0 && failed === 0 && checkError === undefined,
    totals,
    checks: [{ name: "pending-past-deadline", description: "late orders", ...totals, error: checkError, drifts: [] }],
  };
}

const of = (...reports: Report[]): Outcome[] => reports.map((r) => ({ service: "orders", report: r }));

Deno.test("reconcile's exit code: 0 clean, 3 for drift found by a dry run, 0 for a repair that left nothing failed", () => {
  assert.equal(exitCode(of(report("dry-run", 0, 0, 0), report("dry-run", 0, 0, 0))), 0);
  assert.equal(exitCode(of(report("dry-run", 0, 0, 0), report("dry-run", 2, 0, 0))), EXIT_DRIFT);
  assert.equal(exitCode(of(report("repair", 3, 2, 0))), 0, "one repaired, one skipped");
});

Deno.test("reconcile's exit code is 1 when a repair or a check failed or a service could not be asked, drift or not", () => {
  assert.equal(exitCode(of(report("repair", 2, 1, 1))), 1);
  assert.equal(exitCode(of(report("dry-run", 1, 0, 0), report("dry-run", 0, 0, 0, "storage down"))), 1);
  assert.equal(
    exitCode([...of(report("dry-run", 1, 0, 0)), {
      service: "payments",
      report: null,
      error: "cannot reach payments",
    }]),
    1,
  );
  assert.equal(exitCode([{ service: "payments", report: null }]), 0, "--last before any run: nothing to report");
});
