import assert from "node:assert/strict";
import { type DeadLetter, openDeadLetterQueue, type PubSub } from "@trellis/platform/messaging";
import { waitUntil } from "@trellis/platform/testing";
import type { Infra } from "../../services/shared/infra.ts";
import { embeddedSystem } from "../support/system.ts";

Deno.test("a command that breaks its schema goes to the dead-letter topic at once, and the service keeps working", async () => {
  let bus: PubSub | undefined;
  await using env = await embeddedSystem({
    wrap: (infra): Infra => ({
      ...infra,
      events: async () => (bus = await infra.events()),
    }),
  });
  const poison = new TextEncoder().encode(JSON.stringify({ type: "inventory.reserve.v1", orderId: "o-1", items: "?" }));
  await bus!.publish("inventory.commands", { id: "poison-1", key: "o-1", payload: poison });
  // The embedded system runs on the in-memory broker, which retains its dead letters.
  const dlq = openDeadLetterQueue(bus!, "inventory.commands.dlq");
  let letters: DeadLetter[] = [];
  await waitUntil(
    async () => (letters = await dlq.list({ limit: 10 })).length > 0,
    5_000,
    "the poison command dead-lettered",
  );
  assert.equal(letters.length, 1);
  assert.equal(letters[0].messageId, "poison-1");
  assert.equal(letters[0].attempts, 1);
  assert.match(letters[0].error ?? "", /SchemaError|schema/i);
  const res = await fetch(`${env.endpoints.auth}/.well-known/jwks.json`);
  assert.equal(res.status, 200);
  await res.body?.cancel();
});
