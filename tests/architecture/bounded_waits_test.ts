/**
 * Every wait in test code is bounded: an `await` on a deferred, a promise started earlier, a child process, a stream
 * or an event goes through `within()` or `waitUntil()` from `@trellis/platform/testing`, so a regression fails with a
 * message naming what did not happen instead of hanging CI. Test code is every `_test.ts`, everything under `tests/`
 * and every `testing/` folder of `platform/`. This test fails listing each unbounded wait as file:line, why and the
 * line itself.
 */
import { deepStrictEqual } from "node:assert/strict";
import { dirname, join, normalize } from "node:path";
import { isTestCode, type UnboundedWait, unboundedWaits } from "./bounded_waits.ts";

const root = normalize(join(dirname(new URL(import.meta.url).pathname), "..", ".."));

/**
 * Waits the scan flags that are left as they are, each as [file, a piece of the flagged line, why]. An entry matches
 * every finding in its file whose line contains the piece; an entry that matches nothing fails the test, so fixing
 * the wait means deleting its entry.
 */
const ALLOWED: [file: string, piece: string, why: string][] = [
  // The forwarding process itself, run by isolate() inside a namespace: its awaits are the socket I/O it relays and
  // its stdin commands, not a test's waits; its owner bounds each command's answer (netns.ts #next) and kills it.
  ["platform/testing/_forwarder.ts", "await Promise.all([", "the forwarder's two pumps, ended by their sockets"],
  ["platform/testing/_forwarder.ts", "await tail", "the forwarder's write backpressure"],
  ["platform/testing/_forwarder.ts", "for await (const conn of listener)", "the forwarder's accept loop"],
  ["platform/testing/_forwarder.ts", "for await (const text of Deno.stdin", "the forwarder's command loop"],
  // The loop runs in an async function whose promise the test awaits through within() (30 s).
  ["platform/messaging/adapters/kafka/platformatic_test.ts", "for await (const record of stream)", "bounded by within"],
];

function testFiles(dir: string, out: string[] = []): string[] {
  for (const entry of Deno.readDirSync(join(root, dir))) {
    if ([".git", "node_modules", ".trellis", "gen"].includes(entry.name)) continue;
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) testFiles(path, out);
    else if (isTestCode(path)) out.push(path);
  }
  return out;
}

function scan(): { file: string; wait: UnboundedWait }[] {
  const found = [];
  for (const file of ["platform", "services", "tests"].flatMap((dir) => testFiles(dir)).sort()) {
    for (const wait of unboundedWaits(Deno.readTextFileSync(join(root, file)))) found.push({ file, wait });
  }
  return found;
}

const allowedBy = (file: string, wait: UnboundedWait) =>
  ALLOWED.find(([path, piece]) => path === file && wait.text.includes(piece));

Deno.test("every wait in test code goes through within() or waitUntil()", () => {
  const unbounded = scan()
    .filter(({ file, wait }) => !allowedBy(file, wait))
    .map(({ file, wait }) => `${file}:${wait.line}: ${wait.why}: ${wait.text}`);
  deepStrictEqual(unbounded, [], `unbounded waits (wrap each in within()/waitUntil()):\n${unbounded.join("\n")}`);
});

Deno.test("every allow-list entry of the bounded-waits check still matches a wait the scan finds", () => {
  const found = scan();
  const stale = ALLOWED
    .filter(([path, piece]) => !found.some(({ file, wait }) => file === path && wait.text.includes(piece)))
    .map(([path, piece]) => `${path}: "${piece}"`);
  deepStrictEqual(stale, [], `allow-list entries that match nothing (delete them):\n${stale.join("\n")}`);
});

Deno.test("unboundedWaits() flags each unbounded shape and passes the same waits once bounded", () => {
  const bad = [
    /* 1 */ "const got = Promise.withResolvers<string>();",
    /* 2 */ "await got.promise;",
    /* 3 */ "const { promise: arrived, resolve } = Promise.withResolvers<void>();",
    /* 4 */ "await arrived;",
    /* 5 */ "const child = new Deno.Command('x').spawn();",
    /* 6 */ "const { code } = await child.status;",
    /* 7 */ "await new Promise((r) => signal.addEventListener('abort', r));",
    /* 8 */ "await once(emitter, 'ready');",
    /* 9 */ "const url = (await reader.read()).value;",
    /* 10 */ "for await (const line of child.stdout.pipeThrough(new TextDecoderStream())) break;",
    /* 11 */ "const call = client.request('GET', '/');",
    /* 12 */ "await assert.rejects(call, TypeError);",
    /* 13 */ "const out = await new Deno.Command('ip', { args }).output();",
    /* 14 */ "await Promise.all([call, arrived]);",
    /* 15 */ "await state.gate;",
  ].join("\n");
  deepStrictEqual(
    unboundedWaits(bad).map((w) => [w.line, w.rule]),
    [
      [2, "deferred"],
      [4, "pending"],
      [6, "process"],
      [7, "new-promise"],
      [8, "event"],
      [9, "stream"],
      [10, "stream"],
      [12, "pending"],
      [13, "process"],
      [14, "pending"],
      [15, "stored"],
    ],
  );

  const good = [
    "const got = Promise.withResolvers<string>();",
    'await within(got.promise, 5_000, "the message");',
    "const call = client.request('GET', '/');",
    'await assert.rejects(within(call, 1_000, "the call to reject"), TypeError);',
    'const { code } = await within(child.status, 5_000, "the child to exit");',
    "await new Promise((r) => setTimeout(r, 50));",
    "await new Promise((r) => { emitter.on('x', r); setTimeout(r, 1_000); });",
    'await waitUntil(() => seen.length === 3, 5_000, "three messages");',
    "const out = await new Deno.Command('ip', { args, signal: AbortSignal.timeout(5_000) }).output();",
    "const pump = (async () => { for await (const c of child.stdout) text += c; })();",
    'await within(pump, 5_000, "the output to close");',
    "// await got.promise; in a comment",
    'const message = "await child.status in a string";',
    "const re = /await x.promise/;",
    "const text = `await ${'arrived'} in a template`;",
    "const rows = await sql`select 1`;",
  ].join("\n");
  deepStrictEqual(unboundedWaits(good), []);
});
