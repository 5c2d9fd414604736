import assert from "node:assert/strict";
import { waitUntil } from "@trellis/platform/testing";
import { Topics } from "../../services/shared/events.ts";

/** Where the dead-letter scenario finds the system. */
export interface DeadLetterTarget {
  auth: string;
  inventory: string;
  opsSecret: string;
  /** Publishes a message to inventory's command topic on the system's events bus. */
  publishCommand(msg: { id: string; key: string; payload: Uint8Array }): Promise<void>;
}

/**
 * A poison command lands in inventory's dead-letter topic; an `ops` token with scope `ops:dlq` lists, shows, redrives
 * (it fails again and comes back with one redrive counted) and purges it through inventory's `/admin/dlq` endpoints.
 */
export async function deadLetterScenario(t: Deno.TestContext, target: DeadLetterTarget): Promise<void> {
  await t.step(
    "a poison command is dead-lettered, then listed, shown, redriven and purged through /admin/dlq with an ops token",
    async () => {
      const opsToken = async (scope: string) => {
        const res = await fetch(`${target.auth}/oauth/token`, {
          method: "POST",
          body: new URLSearchParams({
            grant_type: "client_credentials",
            client_id: "ops",
            client_secret: target.opsSecret,
            audience: "inventory",
            scope,
          }),
        });
        const body = await res.json();
        assert.equal(res.status, 200, JSON.stringify(body));
        return body.access_token as string;
      };
      const ops = await opsToken("ops:dlq");
      const call = (method: string, path: string, body?: unknown, token = ops) =>
        fetch(`${target.inventory}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...body === undefined ? {} : { "content-type": "application/json" },
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      const letters = async () => {
        const res = await call("GET", `/admin/dlq?source=${encodeURIComponent(Topics.inventoryCommands)}`);
        assert.equal(res.status, 200);
        return (await res.json()).letters as { id: string; messageId: string; redrives: number }[];
      };
      const poisonId = `poison-${crypto.randomUUID()}`;
      const payload = '{"type":"inventory.reserve.v1"}';

      // Not a valid command: its schema error is not retryable, so the router dead-letters it at once.
      await target.publishCommand({ id: poisonId, key: "o-poison", payload: new TextEncoder().encode(payload) });
      const mine = async () => (await letters()).filter((l) => l.messageId === poisonId);
      await waitUntil(async () => (await mine()).length === 1, 15_000, "the poison command in the DLQ");
      const [letter] = await mine();

      const shown = await (await call("GET", `/admin/dlq/${encodeURIComponent(letter.id)}`)).json();
      assert.deepEqual([shown.payload, shown.payloadEncoding, shown.sourceTopic], [
        payload,
        "utf-8",
        Topics.inventoryCommands,
      ]);

      const refused = await call("GET", "/admin/dlq", undefined, await opsToken("keys:read"));
      assert.equal(refused.status, 403);
      await refused.body?.cancel();

      // Back to the consumer, which fails on it again: dead-lettered a second time, with one redrive counted.
      assert.deepEqual(await (await call("POST", "/admin/dlq/redrive", { ids: [letter.id] })).json(), { redriven: 1 });
      await waitUntil(async () => (await mine()).some((l) => l.redrives === 1), 15_000, "the redriven command back");
      assert.deepEqual((await mine()).map((l) => l.redrives), [1]);

      const unfiltered = await call("POST", "/admin/dlq/purge", {});
      assert.equal(unfiltered.status, 400);
      await unfiltered.body?.cancel();
      const [again] = await mine();
      assert.deepEqual(await (await call("POST", "/admin/dlq/purge", { ids: [again.id] })).json(), { purged: 1 });
      assert.deepEqual(await mine(), []);
    },
  );
}
