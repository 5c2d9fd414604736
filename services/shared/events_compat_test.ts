import assert from "node:assert/strict";
import { diffSnapshot, type SchemaSnapshot, snapshotOf } from "@trellis/platform/messaging/schema";
import { EventTypes } from "./events.ts";

const SNAPSHOT = new URL("../../schemas/events.snapshot.json", import.meta.url);

Deno.test("every published event schema is compatible with schemas/events.snapshot.json", async () => {
  const snapshot: SchemaSnapshot = JSON.parse(await Deno.readTextFile(SNAPSHOT));
  const diff = diffSnapshot(snapshot, snapshotOf(EventTypes));
  assert.deepEqual(
    diff.problems,
    [],
    `Incompatible change to a published event schema in services/shared/events.ts:\n  ${
      diff.problems.join("\n  ")
    }\nDo not change a published type: add a new version (e.g. orders.created.v2) next to it, publish both until ` +
      `every consumer reads the new one, then retire the old. Only adding optional properties is allowed in place.`,
  );
  assert.deepEqual(
    diff.removed,
    [],
    `Published event types were removed from services/shared/events.ts: ${diff.removed.join(", ")}. Consumers may ` +
      `still receive them; retire them deliberately with \`deno task schemas:snapshot --retire\`.`,
  );
  assert.ok(
    !diff.changed,
    `services/shared/events.ts has compatible changes not yet in the snapshot (added: ${
      diff.added.join(", ") || "none"
    }); run \`deno task schemas:snapshot\` and commit schemas/events.snapshot.json.`,
  );
});
