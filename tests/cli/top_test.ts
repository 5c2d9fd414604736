import assert from "node:assert/strict";
import { apply, keysOf } from "../../cli/top/command.ts";
import { clip, plain, render, type View } from "../../cli/top/screen.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("keysOf() decodes arrows, vi keys, digits, Enter, Esc and the quit keys from raw input", () => {
  assert.deepEqual(keysOf(bytes("\x1b[A\x1b[Bjk3\r\x1bq\x03")), [
    "up",
    "down",
    "down",
    "up",
    { select: 2 },
    "enter",
    "back",
    "quit",
    "quit",
  ]);
});

Deno.test("apply() wraps the selection around, drills in and out, ignores a number past the list, and quits", () => {
  const view: View = { selected: 0, detail: false, intervalSec: 2 };
  assert.equal(apply(view, "up", 6)?.selected, 5);
  assert.equal(apply({ ...view, selected: 5 }, "down", 6)?.selected, 0);
  assert.equal(apply(view, { select: 8 }, 6)?.selected, 0);
  assert.equal(apply(view, "enter", 6)?.detail, true);
  assert.equal(apply({ ...view, detail: true }, "back", 6)?.detail, false);
  assert.equal(apply(view, "quit", 6), undefined);
});

Deno.test("clip() cuts to the visible width and keeps escape sequences; render() fits the rows", () => {
  assert.equal(clip("\x1b[1mhello\x1b[0m world", 3), "\x1b[1mhel\x1b[0m");
  assert.equal(plain(clip("\x1b[1mhello\x1b[0m world", 8)), "hello wo");
  const frame = render({ selected: 0, detail: false, intervalSec: 2 }, 20, 2);
  assert.equal(frame.length, 2);
  assert.ok(frame.every((l) => plain(l).length <= 20));
});
