import { embeddedSystem } from "../support/system.ts";
import { orderScenarios } from "./scenarios.ts";

Deno.test("embedded mode: orders confirm, cancel for stock, cancel for payment, and bad input is refused", async (t) => {
  await using env = await embeddedSystem();
  await orderScenarios(t, env.endpoints);
});
