import assert from "node:assert/strict";
import { freshDatabase } from "@trellis/platform/db/testing";
import { migrateService } from "../shared/infra.ts";
import { checkClient, seedAccounts, type ServiceClientSeed } from "./accounts.ts";
import { listClients } from "./queries.ts";

const OPS_BEFORE: ServiceClientSeed = { id: "ops", secret: "ops-secret", scopes: ["keys:read"], audiences: ["auth"] };
const OPS_AFTER: ServiceClientSeed = {
  ...OPS_BEFORE,
  scopes: ["keys:read", "ops:read", "ops:reconcile"],
  audiences: ["auth", "orders"],
};
const INVENTORY: ServiceClientSeed = {
  id: "inventory",
  secret: "inventory-secret",
  scopes: ["internal"],
  audiences: ["orders"],
};

Deno.test("seeding an auth database seeded before updates existing clients' rights, keeping a secret that did not change", async () => {
  await using fx = await freshDatabase();
  await migrateService(fx.db, "auth");
  const hashOf = async (id: string) => (await listClients(fx.db)).find((r) => r.id === id)?.secret_hash;

  await seedAccounts(fx.db, [], [OPS_BEFORE]);
  assert.deepEqual(await checkClient(fx.db, "ops", "ops-secret"), { scopes: ["keys:read"], audiences: ["auth"] });
  const firstHash = await hashOf("ops");

  await seedAccounts(fx.db, [], [OPS_AFTER, INVENTORY]);
  assert.deepEqual(await checkClient(fx.db, "ops", "ops-secret"), {
    scopes: ["keys:read", "ops:read", "ops:reconcile"],
    audiences: ["auth", "orders"],
  });
  assert.deepEqual(await checkClient(fx.db, "inventory", "inventory-secret"), {
    scopes: ["internal"],
    audiences: ["orders"],
  });
  assert.equal(await hashOf("ops"), firstHash, "the unchanged secret's hash is kept, not re-hashed");

  await seedAccounts(fx.db, [], [{ ...OPS_AFTER, secret: "ops-rotated" }, INVENTORY]);
  assert.equal(await checkClient(fx.db, "ops", "ops-secret"), undefined, "the old secret no longer works");
  assert.deepEqual((await checkClient(fx.db, "ops", "ops-rotated"))?.scopes, OPS_AFTER.scopes);
  assert.notEqual(await hashOf("ops"), firstHash);
});
