import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { waitUntil, within } from "../testing/mod.ts";
import { createLogger } from "../log/mod.ts";
import { type Check, defineCheck, type Drift } from "./check.ts";
import { Reconciler } from "./reconciler.ts";

const quiet = createLogger("test", { level: "error" });

/** A table of `id -> value` where a negative value is a drift and the repair sets it to 0. */
function negatives(rows: Map<string, number>, repairs: string[] = []): Check {
  return defineCheck({
    name: "negatives",
    description: "rows below zero",
    find: () =>
      Promise.resolve([...rows].filter(([, v]) => v < 0).map(([id, v]) => ({ subject: id, detail: `value ${v}` }))),
    repair: (drift) => {
      repairs.push(drift.subject);
      if ((rows.get(drift.subject) ?? 0) >= 0) return Promise.resolve("skipped");
      rows.set(drift.subject, 0);
      return Promise.resolve("repaired");
    },
  });
}

Deno.test("Reconciler.run() reports drifts in a dry run without repairing, repairs them on demand, then is clean", async () => {
  const rows = new Map([["a", -1], ["b", 2], ["c", -3]]);
  const repairs: string[] = [];
  await using r = new Reconciler({ name: "svc", checks: [negatives(rows, repairs)], logger: quiet });
  const dry = await r.run();
  assert.equal(dry.mode, "dry-run");
  assert.equal(dry.clean, false);
  assert.deepEqual(dry.totals, { found: 2, repaired: 0, skipped: 0, failed: 0 });
  assert.deepEqual(dry.checks[0].drifts, [
    { subject: "a", detail: "value -1", outcome: "found" },
    { subject: "c", detail: "value -3", outcome: "found" },
  ]);
  assert.deepEqual(repairs, []);
  assert.equal(rows.get("a"), -1);
  const fixed = await r.run({ repair: true });
  assert.deepEqual(fixed.totals, { found: 2, repaired: 2, skipped: 0, failed: 0 });
  assert.deepEqual(fixed.checks[0].drifts.map((d) => d.outcome), ["repaired", "repaired"]);
  assert.deepEqual([...rows.values()], [0, 2, 0]);
  const again = await r.run({ repair: true });
  assert.ok(again.clean);
  assert.equal(r.last, again);
});

Deno.test("a drift fixed by something else between find() and repair() is skipped, and a second repair is harmless", async () => {
  const rows = new Map([["a", -1], ["b", -2]]);
  const check = negatives(rows);
  const racing: Check = {
    ...check,
    find: async (signal) => {
      const found = await check.find(signal);
      rows.set("b", 5); // fixed by someone else after it was found
      return found;
    },
  };
  await using r = new Reconciler({ name: "svc", checks: [racing], logger: quiet });
  const report = await r.run({ repair: true });
  assert.deepEqual(report.checks[0].drifts.map((d) => [d.subject, d.outcome]), [["a", "repaired"], ["b", "skipped"]]);
  assert.deepEqual(report.totals, { found: 2, repaired: 1, skipped: 1, failed: 0 });
  assert.equal(await check.repair({ subject: "a", detail: "" }, AbortSignal.timeout(1_000)), "skipped");
  assert.equal(rows.get("b"), 5);
});

Deno.test("a repair that throws fails its drift only, and a find() that throws fails its check only", async () => {
  const broken = defineCheck({
    name: "broken",
    description: "cannot read",
    find: () => Promise.reject(new Error("database down")),
    repair: () => Promise.resolve("repaired" as const),
  });
  const flaky = defineCheck({
    name: "flaky",
    description: "one repair fails",
    find: () => Promise.resolve(["x", "y", "z"].map((s) => ({ subject: s, detail: s }))),
    repair: (d: Drift) => d.subject === "y" ? Promise.reject(new Error("y is locked")) : Promise.resolve("repaired"),
  });
  await using r = new Reconciler({ name: "svc", checks: [broken, flaky], logger: quiet });
  const report = await r.run({ repair: true });
  assert.equal(report.checks[0].error, "database down");
  assert.deepEqual(report.checks[0].drifts, []);
  assert.deepEqual(report.checks[1].drifts.map((d) => [d.subject, d.outcome, d.error]), [
    ["x", "repaired", undefined],
    ["y", "failed", "y is locked"],
    ["z", "repaired", undefined],
  ]);
  assert.deepEqual(report.totals, { found: 3, repaired: 2, skipped: 0, failed: 2 });
  assert.equal(report.clean, false);
});

Deno.test("repairs of one check run at most `concurrency` at a time", async () => {
  let running = 0;
  let peak = 0;
  const slow = defineCheck({
    name: "slow",
    description: "repairs that take a while",
    find: () => Promise.resolve(Array.from({ length: 10 }, (_, i) => ({ subject: `s${i}`, detail: "" }))),
    repair: async () => {
      peak = Math.max(peak, ++running);
      await new Promise((r) => setTimeout(r, 2));
      running--;
      return "repaired";
    },
  });
  await using r = new Reconciler({ name: "svc", checks: [slow], logger: quiet, concurrency: 3 });
  const report = await r.run({ repair: true });
  assert.equal(report.totals.repaired, 10);
  assert.equal(peak, 3);
});

Deno.test("onProgress follows each check through finding, repairing and done", async () => {
  const rows = new Map([["a", -1], ["b", -1]]);
  await using r = new Reconciler({ name: "svc", checks: [negatives(rows)], logger: quiet, concurrency: 1 });
  const seen: string[] = [];
  await r.run({ repair: true, onProgress: (p) => seen.push(`${p.check}:${p.phase}:${p.done}/${p.total}`) });
  assert.deepEqual(seen, [
    "negatives:finding:0/0",
    "negatives:repairing:0/2",
    "negatives:repairing:1/2",
    "negatives:repairing:2/2",
    "negatives:done:2/2",
  ]);
});

Deno.test("runs never overlap: a run asked for during another waits for it", async () => {
  let active = 0;
  let overlapped = false;
  const gate = Promise.withResolvers<void>();
  const check = defineCheck({
    name: "gated",
    description: "waits on a gate",
    find: async () => {
      if (++active > 1) overlapped = true;
      await within(gate.promise, 1_000, "the gate");
      active--;
      return [];
    },
    repair: () => Promise.resolve("repaired" as const),
  });
  await using r = new Reconciler({ name: "svc", checks: [check], logger: quiet });
  const first = r.run();
  const second = r.run({ repair: true });
  assert.ok(r.running);
  gate.resolve();
  const [a, b] = await within(Promise.all([first, second]), 1_000, "both runs");
  assert.equal(a.mode, "dry-run");
  assert.equal(b.mode, "repair");
  assert.equal(overlapped, false);
  assert.ok(!r.running);
});

Deno.test("schedule() runs every interval with a fake sleep, and close() stops it and cancels the run in flight", async () => {
  const ticks: { ms: number; wake: PromiseWithResolvers<void> }[] = [];
  const sleep = (ms: number, signal: AbortSignal) => {
    const wake = Promise.withResolvers<void>();
    signal.addEventListener("abort", () => wake.reject(signal.reason), { once: true });
    ticks.push({ ms, wake });
    return wake.promise;
  };
  const rows = new Map([["a", -1]]);
  const finds: AbortSignal[] = [];
  const hang = Promise.withResolvers<never>();
  let calls = 0;
  const check = defineCheck({
    name: "negatives",
    description: "rows below zero",
    find: (signal) => {
      finds.push(signal);
      // The third run hangs until it is cancelled.
      if (++calls === 3) {
        signal.addEventListener("abort", () => hang.reject(signal.reason), { once: true });
        return hang.promise;
      }
      return negatives(rows).find(signal);
    },
    repair: (d, s) => negatives(rows).repair(d, s),
  });
  const registry = new Registry();
  const r = new Reconciler({ name: "svc", checks: [check], logger: quiet, sleep, registry });
  r.schedule({ intervalMs: 60_000 });
  assert.throws(() => r.schedule({ intervalMs: 1 }), /already scheduled/);
  assert.equal(ticks.length, 1);
  assert.equal(ticks[0].ms, 60_000);
  assert.equal(calls, 0, "the first run comes after one interval");
  ticks[0].wake.resolve();
  await waitUntil(() => ticks.length === 2, 1_000, "the second sleep", 1);
  assert.equal(r.last?.mode, "repair");
  assert.equal(r.last?.totals.repaired, 1);
  ticks[1].wake.resolve();
  await waitUntil(() => ticks.length === 3, 1_000, "the third sleep", 1);
  assert.ok(r.last?.clean);
  ticks[2].wake.resolve();
  await waitUntil(() => calls === 3, 1_000, "the third run to start", 1);
  await within(r.close(), 1_000, "close()");
  assert.ok(finds[2].aborted, "the run in flight was cancelled");
  assert.equal(ticks.length, 3, "no run after close()");
  await assert.rejects(r.run(), /closed/);
  const metrics = await registry.metrics();
  assert.match(metrics, /^reconcile_runs_total\{mode="repair",result="drift"\} 1$/m);
  assert.match(metrics, /^reconcile_runs_total\{mode="repair",result="clean"\} 1$/m);
  assert.match(metrics, /^reconcile_drifts_total\{check="negatives",outcome="repaired"\} 1$/m);
});

Deno.test("a run cancelled by its signal rejects with the reason and starts no further repair", async () => {
  const controller = new AbortController();
  const started: string[] = [];
  const check = defineCheck({
    name: "cancelled",
    description: "the first repair cancels the run",
    find: () => Promise.resolve(["a", "b", "c"].map((s) => ({ subject: s, detail: "" }))),
    repair: (d: Drift) => {
      started.push(d.subject);
      controller.abort(new Error("operator pressed ^C"));
      return Promise.resolve("repaired");
    },
  });
  await using r = new Reconciler({ name: "svc", checks: [check], logger: quiet, concurrency: 1 });
  await assert.rejects(r.run({ repair: true, signal: controller.signal }), /operator pressed/);
  assert.deepEqual(started, ["a"]);
  assert.equal(r.last, undefined);
  assert.ok((await r.run()).totals.found === 3, "the reconciler still runs afterwards");
});

Deno.test("bad options are refused: concurrency, duplicate names, a non-kebab name, a non-positive interval", () => {
  assert.throws(() => new Reconciler({ name: "s", checks: [], concurrency: 0 }), RangeError);
  const c = negatives(new Map());
  assert.throws(() => new Reconciler({ name: "s", checks: [c, c] }), /two checks named "negatives"/);
  assert.throws(() => defineCheck({ ...c, name: "Bad Name" }), TypeError);
  const r = new Reconciler({ name: "s", checks: [] });
  assert.throws(() => r.schedule({ intervalMs: 0 }), RangeError);
  return r.close();
});
