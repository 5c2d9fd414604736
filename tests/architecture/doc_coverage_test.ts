/**
 * Every export of `platform/` is documented: each symbol a front door (a file `deno.json` `exports` names) exports has
 * a doc comment with an `@example`, which `deno task test` runs through `deno test --doc`. This test reads the
 * front doors with `deno doc --json` and fails naming each exported function, class, interface, type alias, variable
 * or enum that lacks a doc comment or an example. Members need no example of their own.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const root = normalize(join(dirname(new URL(import.meta.url).pathname), "..", ".."));

interface JsDoc {
  doc?: string;
  tags?: { kind: string }[];
}
interface Location {
  filename: string;
  line: number;
}
interface Declaration {
  kind: string;
  declarationKind: string;
  location: Location;
  jsDoc?: JsDoc;
  def?: { target?: Location };
}
interface DocSymbol {
  name: string;
  declarations: Declaration[];
}
interface DocOutput {
  nodes: Record<string, { symbols: DocSymbol[] }>;
}

/** An exported symbol, where it is declared and the front door exporting it. */
interface Exported {
  name: string;
  kind: string;
  file: string;
  line: number;
  door: string;
  documented: boolean;
  exemplified: boolean;
}

const documentedKinds = new Set(["function", "class", "interface", "typeAlias", "variable", "enum", "namespace"]);

function relativePath(url: string): string {
  return relative(root, new URL(url).pathname);
}

/** Every symbol the front doors export, re-exports of a symbol declared in platform/ resolved to that declaration. */
function exportsOf(output: DocOutput): Exported[] {
  const byDeclaration = new Map<string, Exported>();
  const references: { name: string; target: Location; door: string; file: string; line: number }[] = [];
  for (const [door, { symbols }] of Object.entries(output.nodes)) {
    for (const symbol of symbols) {
      const declarations = symbol.declarations.filter((d) => d.declarationKind === "export");
      const reference = declarations.find((d) => d.kind === "reference" && d.def?.target);
      if (reference) {
        const { filename, line } = reference.location;
        references.push({
          name: symbol.name,
          target: reference.def!.target!,
          door: relativePath(door),
          file: relativePath(filename),
          line: line + 1,
        });
        continue;
      }
      const own = declarations.filter((d) => documentedKinds.has(d.kind));
      if (own.length === 0) continue;
      const { filename, line } = own[0].location;
      const file = relativePath(filename);
      const key = `${file}#${symbol.name}`;
      if (byDeclaration.has(key)) continue;
      byDeclaration.set(key, {
        name: symbol.name,
        kind: own.map((d) => d.kind).join("+"),
        file,
        line: line + 1,
        door: relativePath(door),
        documented: own.some((d) => (d.jsDoc?.doc ?? "").trim() !== ""),
        exemplified: own.some((d) => d.jsDoc?.tags?.some((t) => t.kind === "example") ?? false),
      });
    }
  }
  const declaredAt = new Set(
    [...byDeclaration.values()].map((e) => `${e.file}:${e.line}`),
  );
  for (const ref of references) {
    if (declaredAt.has(`${relativePath(ref.target.filename)}:${ref.target.line + 1}`)) continue;
    byDeclaration.set(`${ref.file}#${ref.name}`, {
      name: ref.name,
      kind: "reference",
      file: ref.file,
      line: ref.line,
      door: ref.door,
      documented: false,
      exemplified: false,
    });
  }
  return [...byDeclaration.values()];
}

/** Where the symbol belongs for the allow-list: its file, or the front door re-exporting it from a dependency. */
function ownerPath(e: Exported): string {
  return e.file.includes("node_modules/") ? e.door : e.file;
}

/** The symbols lacking a doc comment or an example, as "file:line name (kind): what is missing". */
function lacking(exported: Exported[]): string[] {
  return exported
    .filter((e) => !e.documented || !e.exemplified)
    .map((e) =>
      `${ownerPath(e)}:${e.line} ${e.name} (${e.kind}): ${e.documented ? "no @example" : "no doc comment"}` +
      (e.file === ownerPath(e) ? "" : ` [declared in ${e.file}]`)
    )
    .sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
}

async function docJson(files: string[]): Promise<DocOutput> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", ...files],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    // deno doc over every front door takes a few seconds; a minute means it hangs.
    signal: AbortSignal.timeout(60_000),
  }).output();
  const text = new TextDecoder().decode(stdout);
  ok(code === 0, `deno doc --json failed (exit ${code}):\n${new TextDecoder().decode(stderr)}`);
  return JSON.parse(text) as DocOutput;
}

Deno.test("every export of a platform front door has a doc comment with an @example", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json"))) as { exports: Record<string, string> };
  const doors = Object.values(config.exports).map((file) => normalize(file));
  const exported = exportsOf(await docJson(doors));
  ok(exported.length > 200, `expected the platform's exports, found ${exported.length}`);
  const missing = lacking(exported);
  ok(missing.length === 0, `${missing.length} exports lack a doc comment or an @example:\n${missing.join("\n")}`);
});

Deno.test("the coverage check names an export without a doc comment or without an example", async () => {
  const dir = await Deno.makeTempDir({ prefix: "doc_coverage_" });
  try {
    const door = join(dir, "mod.ts");
    const inner = join(dir, "inner.ts");
    await Deno.writeTextFile(door, 'export * from "./inner.ts";\n');
    await Deno.writeTextFile(
      inner,
      [
        "/**\n * Adds.\n * @example Add two\n * ```ts\n * add(1, 2);\n * ```\n */",
        "export function add(a: number, b: number): number {\n  return a + b;\n}",
        "/** Options without an example. */\nexport interface AddOptions {\n  carry?: boolean;\n}",
        "export type Sum = number;",
        `import { parseTraceparent } from "${new URL("../../platform/context/mod.ts", import.meta.url)}";`,
        "export { parseTraceparent };",
      ].join("\n"),
    );
    const at = relative(root, inner);
    deepStrictEqual(lacking(exportsOf(await docJson([door, "platform/context/mod.ts"]))), [
      `${at}:12 AddOptions (interface): no @example`,
      `${at}:15 Sum (typeAlias): no doc comment`,
    ]);
    const alone = exportsOf(await docJson([door]));
    ok(alone.some((e) => e.name === "parseTraceparent" && e.exemplified), "a re-export carries its declaration's docs");
    deepStrictEqual(lacking(alone), [
      `${at}:12 AddOptions (interface): no @example`,
      `${at}:15 Sum (typeAlias): no doc comment`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
