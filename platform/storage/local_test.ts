import assert from "node:assert/strict";
import { localStore } from "./local.ts";

const enc = new TextEncoder();

Deno.test("localStore() round-trips bytes and content type, lists by prefix and deletes", async () => {
  const root = await Deno.makeTempDir();
  try {
    const store = localStore(root);
    await store.put("receipts/a.json", enc.encode('{"a":1}'), { contentType: "application/json" });
    await store.put("receipts/b.json", enc.encode("{}"));
    await store.put("other/c.bin", new Uint8Array([0, 255]));
    const got = await store.get("receipts/a.json");
    assert.equal(new TextDecoder().decode(got?.body), '{"a":1}');
    assert.equal(got?.info.contentType, "application/json");
    assert.equal(got?.info.size, 7);
    assert.deepEqual(await store.list("receipts/"), ["receipts/a.json", "receipts/b.json"]);
    await store.delete("receipts/a.json");
    assert.equal(await store.get("receipts/a.json"), undefined);
    await store.delete("receipts/a.json");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("localStore() rejects keys that would escape its root", async () => {
  const root = await Deno.makeTempDir();
  try {
    const store = localStore(root);
    for (const key of ["../x", "/etc/passwd", "a/../../b", "", "a//b", "a\\b"]) {
      await assert.rejects(store.put(key, new Uint8Array()), TypeError, key);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("localStore() overwrites atomically: a reader sees the old or the new object", async () => {
  const root = await Deno.makeTempDir();
  try {
    const store = localStore(root);
    const small = enc.encode("x".repeat(10));
    const big = enc.encode("y".repeat(1 << 20));
    await store.put("k", small);
    const reads: number[] = [];
    await Promise.all([
      store.put("k", big),
      (async () => {
        for (let i = 0; i < 20; i++) reads.push((await store.get("k"))!.body.byteLength);
      })(),
    ]);
    assert.ok(reads.every((n) => n === small.byteLength || n === big.byteLength), `partial read: ${reads}`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
