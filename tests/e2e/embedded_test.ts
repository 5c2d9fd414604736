import { loadConfig, withPorts } from "../../services/shared/config.ts";
import { embeddedInfra } from "../../services/shared/embedded.ts";
import { startSystem } from "../../services/system.ts";
import { freePorts } from "../support/ports.ts";
import { orderScenarios } from "./scenarios.ts";

/** The whole system in this process, as `deno task dev` runs it, on free ports and a temporary storage dir. */
async function embeddedSystem() {
  const storageDir = await Deno.makeTempDir({ prefix: "trellis-e2e-" });
  const [gateway, auth, orders, ordersGrpc, inventory, inventoryGrpc, payments, paymentsGrpc, notifications] =
    freePorts(9);
  const base = loadConfig({});
  const config = withPorts({
    ...base,
    ports: { gateway, auth, orders, ordersGrpc, inventory, inventoryGrpc, payments, paymentsGrpc, notifications },
    authUrl: "",
    grpc: { orders: "", inventory: "", payments: "" },
    notificationsUrl: "",
    storageDir,
  });
  const system = await startSystem(config, embeddedInfra({ storageDir }));
  return {
    endpoints: { gateway: system.services.gateway.url, auth: system.services.auth.url },
    async [Symbol.asyncDispose]() {
      await system.stop();
      await Deno.remove(storageDir, { recursive: true });
    },
  };
}

Deno.test("embedded mode: orders confirm, cancel for stock, cancel for payment, and bad input is refused", async (t) => {
  await using system = await embeddedSystem();
  await orderScenarios(t, system.endpoints);
});
