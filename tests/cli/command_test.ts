import assert from "node:assert/strict";
import { type Command, helpOf, parseInput, UsageError } from "../../cli/command.ts";
import { table } from "../../cli/table.ts";

const show: Command = {
  path: ["dlq", "show"],
  args: ["<id>"],
  summary: "Shows one.",
  flags: { limit: { type: "string", value: "n", description: "at most n" } },
  run: () => Promise.resolve(0),
};
const many: Command = { ...show, path: ["dlq", "purge"], args: ["[id...]"] };

Deno.test("parseInput() takes the command's flags and the common ones, and refuses unknown flags and wrong arity", () => {
  const input = parseInput(show, ["dl-1", "--limit", "5", "--json", "--url", "orders=http://h:1"]);
  assert.deepEqual(input.positionals, ["dl-1"]);
  assert.equal(input.values.limit, "5");
  assert.equal(input.values.json, true);
  assert.deepEqual(input.values.url, ["orders=http://h:1"]);
  assert.throws(() => parseInput(show, []), new UsageError("missing argument <id>"));
  assert.throws(() => parseInput(show, ["a", "b"]), new UsageError('unexpected argument "b"'));
  assert.throws(() => parseInput(show, ["a", "--nope"]), UsageError);
  assert.deepEqual(parseInput(many, ["a", "b", "c"]).positionals, ["a", "b", "c"]);
  assert.equal(parseInput(show, ["--help"]).values.help, true, "--help needs no arguments");
});

Deno.test("helpOf() shows usage, summary and every flag with its placeholder", () => {
  const help = helpOf(show);
  assert.match(help, /^Usage: trellis dlq show <id> \[flags\]\n\nShows one\.\n/);
  assert.match(help, /\n {2}--limit <n>\s+at most n\n/);
  assert.match(help, /\n {2}-h, --help\s+show this help/);
});

Deno.test("table() pads columns to the widest cell, right-aligns numbers and shows nothing as –", () => {
  assert.equal(
    table(["NAME", "N", "NOTE"], [["a", 1, null], ["bbb", 20, "x"]]),
    ["NAME   N  NOTE", "a      1  –", "bbb   20  x"].join("\n"),
  );
});
