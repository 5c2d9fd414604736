import assert from "node:assert/strict";
import { createLogger } from "../log/mod.ts";
import { Service } from "../service/mod.ts";
import { waitUntil } from "../testing/mod.ts";
import { defineCheck } from "./check.ts";
import { reconcilerFor } from "./reconciler_for.ts";

Deno.test("reconcilerFor() runs on its schedule from start, counts on /metrics, and stops with the service", async () => {
  const logger = createLogger("svc", { level: "error" });
  const svc = new Service({ name: "svc", logger });
  let runs = 0;
  const reconciler = reconcilerFor(svc, [defineCheck({
    name: "counted",
    description: "counts its runs",
    find: () => {
      runs++;
      return Promise.resolve([]);
    },
    repair: () => Promise.resolve("repaired" as const),
  })], { intervalMs: 10 });
  assert.equal(reconciler.name, "svc");
  await svc.start();
  try {
    await waitUntil(() => runs >= 2, 2_000, "two scheduled runs");
    const metrics = await (await fetch(`${svc.url}/metrics`)).text();
    assert.match(metrics, /^reconcile_runs_total\{mode="repair",result="clean",service="svc"\} [1-9]/m);
  } finally {
    await svc.stop();
  }
  const after = runs;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(runs, after, "no run after stop()");
  await assert.rejects(reconciler.run(), /closed/);
});

Deno.test("reconcilerFor() with intervalMs 0 runs only on demand; a negative interval is refused", async () => {
  const svc = new Service({ name: "svc", logger: createLogger("svc", { level: "error" }) });
  let runs = 0;
  const reconciler = reconcilerFor(svc, [defineCheck({
    name: "counted",
    description: "counts its runs",
    find: () => Promise.resolve((runs++, [])),
    repair: () => Promise.resolve("repaired" as const),
  })]);
  await svc.start();
  try {
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(runs, 0);
    assert.ok((await reconciler.run()).clean);
    assert.equal(runs, 1);
  } finally {
    await svc.stop();
  }
  assert.throws(() => reconcilerFor(svc, [], { intervalMs: -1 }), RangeError);
});
