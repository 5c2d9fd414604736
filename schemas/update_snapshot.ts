/**
 * `deno task schemas:snapshot`: rewrites `schemas/events.snapshot.json` from `services/shared/events.ts`, refusing
 * incompatible changes to published types (publish a `….v2` instead). Dropping a published type needs `--retire`,
 * once no producer sends it and no queue still holds it.
 *
 * @module
 */
import { diffSnapshot, type SchemaSnapshot, snapshotOf } from "@trellis/platform/messaging/schema";
import { EventTypes } from "../services/shared/events.ts";

const file = new URL("./events.snapshot.json", import.meta.url);
let snapshot: SchemaSnapshot = {};
try {
  snapshot = JSON.parse(await Deno.readTextFile(file));
} catch (err) {
  if (!(err instanceof Deno.errors.NotFound)) throw err;
}
const current = snapshotOf(EventTypes);
const diff = diffSnapshot(snapshot, current);
if (diff.problems.length > 0) {
  console.error(`Refusing to update the snapshot: incompatible changes to published types (bump to .v2 instead):`);
  for (const p of diff.problems) console.error(`  - ${p}`);
  Deno.exit(1);
}
if (diff.removed.length > 0 && !Deno.args.includes("--retire")) {
  console.error(`Refusing to drop published types without --retire: ${diff.removed.join(", ")}`);
  Deno.exit(1);
}
await Deno.writeTextFile(file, JSON.stringify(current, null, 2) + "\n");
console.log(
  diff.changed
    ? `Updated ${file.pathname} (added: ${diff.added.join(", ") || "none"}; retired: ${
      diff.removed.join(", ") || "none"
    })`
    : "Snapshot already up to date",
);
