import assert from "node:assert/strict";
import { Router } from "../http/mod.ts";
import { createLogger } from "../log/mod.ts";
import { defineCheck } from "./check.ts";
import { reconcileEndpoints } from "./endpoints.ts";
import { Reconciler } from "./reconciler.ts";
import type { ReconcileReport } from "./report.ts";

const quiet = createLogger("test", { level: "error" });

function setup() {
  const rows = new Map([["a", -1]]);
  const reconciler = new Reconciler({
    name: "orders",
    logger: quiet,
    checks: [defineCheck({
      name: "negatives",
      description: "rows below zero",
      find: () =>
        Promise.resolve([...rows].filter(([, v]) => v < 0).map(([id, v]) => ({ subject: id, detail: `value ${v}` }))),
      repair: (d) => {
        if ((rows.get(d.subject) ?? 0) >= 0) return Promise.resolve("skipped" as const);
        rows.set(d.subject, 0);
        return Promise.resolve("repaired" as const);
      },
    })],
  });
  const { run, last } = reconcileEndpoints(reconciler);
  const router = new Router().post("/admin/reconcile", (req) => run(req)).get(
    "/admin/reconcile/last",
    (req) => last(req),
  );
  const post = (body?: string, type = "application/json") =>
    router.handler(
      new Request("http://svc/admin/reconcile", {
        method: "POST",
        body,
        headers: body === undefined ? {} : { "content-type": type },
      }),
    );
  const getLast = () => router.handler(new Request("http://svc/admin/reconcile/last"));
  return { rows, reconciler, post, getLast };
}

Deno.test('POST /admin/reconcile answers the report: a dry run by default, a repair with {"repair": true}', async () => {
  const { rows, reconciler, post, getLast } = setup();
  await using _ = reconciler;
  const none = await getLast();
  assert.equal(none.status, 404);
  assert.equal(none.headers.get("content-type"), "application/problem+json");
  await none.body?.cancel();

  const empty = await post();
  assert.equal(empty.status, 200);
  assert.equal(empty.headers.get("cache-control"), "no-store");
  const dry: ReconcileReport = await empty.json();
  assert.equal(dry.mode, "dry-run");
  assert.deepEqual(dry.checks[0].drifts, [{ subject: "a", detail: "value -1", outcome: "found" }]);
  assert.equal(rows.get("a"), -1);

  const repaired: ReconcileReport = await (await post('{"repair":true}')).json();
  assert.equal(repaired.mode, "repair");
  assert.equal(repaired.totals.repaired, 1);
  assert.equal(rows.get("a"), 0);

  const last = await getLast();
  assert.equal(last.status, 200);
  assert.deepEqual(await last.json(), repaired);
});

Deno.test('POST /admin/reconcile refuses a body that is not {"repair": boolean} with a 4xx problem', async () => {
  const { reconciler, post } = setup();
  await using _ = reconciler;
  for (
    const [body, status, type] of [
      ['{"repair":"yes"}', 400, "application/json"],
      ['{"repair":true,"force":1}', 400, "application/json"],
      ["[true]", 400, "application/json"],
      ["{", 400, "application/json"],
      ["repair=true", 415, "application/x-www-form-urlencoded"],
    ] as const
  ) {
    const res = await post(body, type);
    assert.equal(res.status, status, body);
    assert.equal(res.headers.get("content-type"), "application/problem+json", body);
    await res.body?.cancel();
  }
  assert.equal(reconciler.last, undefined, "no run was made");
});
