import assert from "node:assert/strict";
import { waitUntil, within } from "../../testing/mod.ts";
import { startTraceReceiver } from "./receiver.ts";

const child = new URL("./testdata/spans_child.ts", import.meta.url).pathname;

for (const protocol of ["http/protobuf", "http/json"]) {
  Deno.test(`the receiver decodes a ${protocol} export from Deno's exporter into linked spans with their service`, async () => {
    await using receiver = startTraceReceiver();
    const { code, stdout, stderr } = await within(
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", child],
        env: {
          OTEL_DENO: "true",
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
          OTEL_SERVICE_NAME: "child-process",
        },
        stdout: "piped",
        stderr: "piped",
      }).output(),
      30_000,
      "the traced child process",
    );
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const traceId = new TextDecoder().decode(stdout).trim();
    assert.match(traceId, /^[0-9a-f]{32}$/);
    await waitUntil(() => (receiver.store.trace(traceId)?.spans.length ?? 0) >= 3, 5_000, "the child's spans");
    const res = await fetch(`${receiver.url}/api/traces/${traceId}`);
    const { spans } = await res.json();
    const byName = Object.fromEntries(spans.map((s: { name: string }) => [s.name, s]));
    assert.deepEqual(Object.keys(byName).sort(), ["GET /items/:id", "GET", "load item", "SELECT items"].sort());
    const server = byName["GET /items/:id"], load = byName["load item"], sql = byName["SELECT items"];
    assert.equal(server.kind, "server");
    assert.equal(load.parentSpanId, server.spanId);
    assert.equal(sql.parentSpanId, load.spanId);
    assert.equal(byName["GET"].kind, "client");
    assert.equal(server.parentSpanId, byName["GET"].spanId);
    // The attribute wins over the resource; a span without it inherits its parent's within one process.
    assert.equal(load.service, "inventory");
    assert.equal(sql.service, "inventory");
    assert.equal(server.service, "inventory");
    assert.equal(byName["GET"].service, "child-process");
    assert.deepEqual(sql.status, { code: "error", message: "relation missing" });
    assert.equal(sql.events[0].name, "exception");
    assert.equal(sql.attributes["db.system"], "postgresql");
    assert.ok(sql.durationMs >= 0 && sql.startUnixMs > Date.now() - 60_000);
    const listed = await (await fetch(`${receiver.url}/api/traces?service=inventory&limit=5`)).json();
    assert.deepEqual(listed.traces.map((t: { traceId: string }) => t.traceId), [traceId]);
    const none = await (await fetch(`${receiver.url}/api/traces?service=nobody`)).json();
    assert.deepEqual(none.traces, []);
  });
}

Deno.test("the receiver answers 404 for an unknown trace and problem+json 400 for a bad id, limit or body", async () => {
  await using receiver = startTraceReceiver();
  const unknown = await fetch(`${receiver.url}/api/traces/${"a".repeat(32)}`);
  assert.equal(unknown.status, 404);
  await unknown.body?.cancel();
  for (const path of ["/api/traces/xyz", "/api/traces?limit=0"]) {
    const res = await fetch(receiver.url + path);
    assert.equal(res.status, 400, path);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    await res.body?.cancel();
  }
  const bad = await fetch(`${receiver.url}/v1/traces`, {
    method: "POST",
    headers: { "content-type": "application/x-protobuf" },
    body: new Uint8Array([0x0a, 0xff]),
  });
  assert.equal(bad.status, 400);
  await bad.body?.cancel();
});

Deno.test("the store keeps only the last maxTraces traces, evicting the one updated longest ago", async () => {
  await using receiver = startTraceReceiver({ maxTraces: 2 });
  const send = (traceId: string) =>
    receiver.store.add(
      new TextEncoder().encode(JSON.stringify({
        resourceSpans: [{
          scopeSpans: [{
            spans: [{ traceId, spanId: "00f067aa0ba902b7", name: "x", startTimeUnixNano: "1", endTimeUnixNano: "2" }],
          }],
        }],
      })),
      "application/json",
    );
  const [a, b, c] = ["a", "b", "c"].map((x) => x.repeat(32));
  send(a);
  send(b);
  send(a);
  send(c);
  assert.deepEqual(receiver.store.traces().map((t) => t.traceId), [c, a]);
});
