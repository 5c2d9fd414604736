import assert from "node:assert/strict";
import { within } from "@trellis/platform/testing";
import { promtool } from "./promtool.ts";

const deploy = new URL("../../deploy/", import.meta.url).pathname;

Deno.test("the alert rules in deploy/ pass their promtool unit tests", async () => {
  const { code, output } = await within(
    promtool(["test", "rules", `${deploy}alerts_test.yml`]),
    30_000,
    "promtool test rules",
  );
  assert.equal(code, 0, output);
  assert.match(output, /SUCCESS/);
});

Deno.test("both Prometheus configurations in deploy/ are valid and load the alert rules", async () => {
  for (const file of ["prometheus.yml", "prometheus.compose.yml"]) {
    const { code, output } = await within(promtool(["check", "config", `${deploy}${file}`]), 30_000, `check ${file}`);
    assert.equal(code, 0, output);
    assert.match(output, /SUCCESS: 10 rules found/, output);
  }
});
