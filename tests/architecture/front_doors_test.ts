/**
 * Each platform package's public API is its front door: the `mod.ts` (or file) its `deno.json` subpath export names.
 * A file may import another file of the same package (a package is the nearest folder under `platform/` holding a
 * `mod.ts`, subpackages included), or another package through its front door; `services/`, `scripts/` and `tests/`
 * use the `@trellis/platform/<pkg>` specifiers, never a path into `platform/`. This test fails naming each import that reaches past a front door.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const root = normalize(join(dirname(new URL(import.meta.url).pathname), "..", ".."));
const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json"))) as {
  name: string;
  exports: Record<string, string>;
};
/** Front-door file (repo-relative) → its specifier. */
const doors = new Map(
  Object.entries(config.exports).map(([sub, file]) => [normalize(file), config.name + sub.slice(1)] as const),
);
/** Specifier → front-door file. */
const bySpecifier = new Map([...doors].map(([file, spec]) => [spec, file] as const));

const isFile = (path: string) => {
  try {
    return Deno.statSync(join(root, path)).isFile;
  } catch {
    return false;
  }
};

/** The package `file` belongs to: its nearest folder under `platform/` with a `mod.ts`. */
function packageOf(file: string): string | undefined {
  for (let dir = dirname(file); dir.startsWith("platform/"); dir = dirname(dir)) {
    if (isFile(`${dir}/mod.ts`)) return dir;
  }
  return undefined;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const entry of Deno.readDirSync(join(root, dir))) {
    if ([".git", "node_modules", ".trellis", "gen"].includes(entry.name)) continue;
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) sourceFiles(path, out);
    else if (/\.tsx?$/.test(entry.name)) out.push(path);
  }
  return out;
}

/** Every import, re-export and dynamic import specifier in `text`, doc examples included. */
function specifiers(text: string): string[] {
  return [...text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1]);
}

/** The imports of `file` that reach past another package's front door, as "file: specifier (why)". */
function violations(file: string, text: string): string[] {
  const found: string[] = [];
  for (const spec of specifiers(text)) {
    if (spec.startsWith(config.name)) {
      if (!bySpecifier.has(spec)) found.push(`${file}: "${spec}" is not a subpath export of ${config.name}`);
      continue;
    }
    if (!spec.startsWith(".")) continue;
    const target = normalize(join(dirname(file), spec));
    if (!target.startsWith("platform/")) continue;
    if (!file.startsWith("platform/")) {
      found.push(
        `${file}: "${spec}" reaches into platform/ by path; import ${doors.get(target) ?? "its package's specifier"}`,
      );
      continue;
    }
    if (doors.has(target)) continue;
    const pkg = packageOf(target);
    if (pkg === undefined || file.startsWith(`${pkg}/`)) continue;
    const door = doors.get(`${pkg}/mod.ts`);
    found.push(`${file}: "${spec}" is internal to ${pkg}; import ${door ?? `${pkg}/mod.ts (not exported yet)`}`);
  }
  return found;
}

Deno.test("every import outside a package goes through its front door", async () => {
  const self = relative(root, new URL(import.meta.url).pathname);
  const files = ["platform", "services", "scripts", "tests", "schemas"].flatMap((dir) => sourceFiles(dir))
    .filter((file) => file !== self);
  ok(files.length > 100, `expected the repository's sources, found ${files.length} files`);
  const found: string[] = [];
  for (const file of files) found.push(...violations(file, await Deno.readTextFile(join(root, file))));
  deepStrictEqual(found, [], `imports past a front door:\n${found.join("\n")}`);
});

Deno.test("every subpath export names an existing file", () => {
  const missing = [...doors.keys()].filter((file) => !isFile(file));
  deepStrictEqual(missing, []);
});

Deno.test("the check catches an internal import, from inside and outside platform/", () => {
  deepStrictEqual(violations("services/orders/main.ts", 'import { x } from "../../platform/db/db.ts";').length, 1);
  deepStrictEqual(violations("platform/outbox/outbox.ts", 'import type { Database } from "../db/db.ts";').length, 1);
  deepStrictEqual(violations("services/orders/main.ts", 'import { x } from "@trellis/platform/db/db.ts";').length, 1);
  deepStrictEqual(violations("scripts/bench.ts", 'import { x } from "../platform/db/mod.ts";').length, 1);
  deepStrictEqual(violations("platform/outbox/outbox.ts", 'import type { Database } from "../db/mod.ts";'), []);
  deepStrictEqual(violations("platform/db/postgres.ts", 'import { FailFast } from "./fail_fast.ts";'), []);
  deepStrictEqual(violations("platform/messaging/middleware/retry.ts", 'import "../message.ts";'), []);
  deepStrictEqual(violations("tests/x_test.ts", 'import { connectPostgres } from "@trellis/platform/db";'), []);
});
