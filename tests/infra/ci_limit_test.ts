/**
 * scripts/ci_limit.sh, the time limit `.ci/run` puts on the whole test run, against a tiny fixture file whose last test
 * never ends: a 5 s limit kills the run and its child processes, names the file, test and step that were running,
 * and still ends with one "N passed, N failed" line and a non-zero exit; a --parallel run (Deno prints a test there
 * only once it ended) names the test Deno reported running for over a minute.
 */
import assert from "node:assert/strict";
import { waitUntil, within } from "@trellis/platform/testing";

const ROOT = new URL("../../", import.meta.url).pathname;
const FIXTURE = "tests/infra/fixtures/hangs.ts";

/** Runs ci_limit.sh with `args` from the repository root; its exit code and output lines. */
async function ciLimit(args: string[], env: Record<string, string> = {}, boundMs = 60_000) {
  const out = await within(
    new Deno.Command("bash", {
      args: ["scripts/ci_limit.sh", ...args],
      cwd: ROOT,
      env,
      stdout: "piped",
      stderr: "piped",
    })
      .output(),
    boundMs,
    `ci_limit.sh ${args.join(" ")}`,
  );
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, text, lines: text.trimEnd().split("\n") };
}

/** Whether `pid` runs: it exists and is not a zombie waiting to be reaped. */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch {
    return false;
  }
}

Deno.test("ci_limit.sh kills a run past its limit, names the file, test and step that were running, and fails", async () => {
  const pidFile = await Deno.makeTempFile({ prefix: "trellis-ci-limit-" });
  try {
    const started = performance.now();
    const run = await ciLimit(["5", Deno.execPath(), "test", "-A", FIXTURE], { HANG_PID_FILE: pidFile });
    const seconds = (performance.now() - started) / 1000;

    assert.equal(run.code, 1, run.text);
    assert.ok(seconds < 30, `took ${seconds.toFixed(1)} s with a 5 s limit`);
    assert.ok(run.lines.includes("CI limit of 5 s reached: the test run was killed."), run.text);
    assert.ok(run.lines.includes(`Still running: ./${FIXTURE}`), run.text);
    assert.ok(run.lines.includes("  test: a test that never ends"), run.text);
    assert.ok(run.lines.includes("  step: a step that sleeps for ten minutes"), run.text);
    assert.equal(run.lines.at(-1), "1 passed, 2 failed", "the passing test, the failing one and the one killed");

    const sleeper = Number(await Deno.readTextFile(pidFile));
    assert.ok(sleeper > 0, `the fixture wrote no pid: ${run.text}`);
    await waitUntil(() => !alive(sleeper), 5_000, `the fixture's sleep (pid ${sleeper}) to be killed with the run`);
  } finally {
    await Deno.remove(pidFile);
  }
});

Deno.test("ci_limit.sh kills a --parallel run past its limit, names the test Deno reported running for over a minute, and fails", async () => {
  // Deno prints a test of a parallel run only once it ended, and names one still running only after a minute.
  const pidFile = await Deno.makeTempFile({ prefix: "trellis-ci-limit-" });
  try {
    const run = await ciLimit(
      ["70", Deno.execPath(), "test", "-A", "--parallel", FIXTURE],
      { HANG_PID_FILE: pidFile },
      120_000,
    );
    assert.equal(run.code, 1, run.text);
    assert.ok(run.lines.includes("CI limit of 70 s reached: the test run was killed."), run.text);
    assert.ok(run.lines.includes("Still running: a test that never ends"), run.text);
    assert.ok(run.lines.includes(`Last result from: ./${FIXTURE}`), run.text);
    assert.equal(run.lines.at(-1), "1 passed, 2 failed", "the passing test, the failing one and the one killed");
    const sleeper = Number(await Deno.readTextFile(pidFile));
    await waitUntil(() => !alive(sleeper), 5_000, `the fixture's sleep (pid ${sleeper}) to be killed with the run`);
  } finally {
    await Deno.remove(pidFile);
  }
});

Deno.test("ci_limit.sh ends a run that finished in time with Deno's own counts and exit code", async () => {
  const passing = await ciLimit(["60", Deno.execPath(), "test", "-A", "--filter", "passes", FIXTURE]);
  assert.equal(passing.code, 0, passing.text);
  assert.equal(passing.lines.at(-1), "1 passed, 0 failed");

  const failing = await ciLimit(["60", Deno.execPath(), "test", "-A", "--filter", "fails", FIXTURE]);
  assert.equal(failing.code, 1, failing.text);
  assert.equal(failing.lines.at(-1), "0 passed, 1 failed");
  assert.ok(!failing.text.includes("CI limit"), failing.text);
});

Deno.test("ci_limit.sh refuses a limit that is not a positive whole number of seconds", async () => {
  for (const limit of ["0", "-5", "1.5", "soon"]) {
    const run = await ciLimit([limit, "true"]);
    assert.equal(run.code, 2, `limit ${limit}: ${run.text}`);
    assert.match(run.text, /usage: .*LIMIT_S/);
  }
});
