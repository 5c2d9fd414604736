import assert from "node:assert/strict";
import { waitUntil, within } from "../../testing/mod.ts";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { decodeExport } from "./otlp.ts";
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

Deno.test("a 64-bit integer attribute stays exact: a number within ±(2^53 - 1), its decimal string beyond", () => {
  const values = { small: -42n, edge: 9007199254740991n, big: 9007199254740993n, negative: -(2n ** 63n) };
  const expected = { small: -42, edge: 9007199254740991, big: "9007199254740993", negative: "-9223372036854775808" };

  // OTLP's JSON mapping carries int64 as a string.
  const json = decodeExport(
    new TextEncoder().encode(JSON.stringify({
      resourceSpans: [{
        scopeSpans: [{
          spans: [{
            traceId: "a".repeat(32),
            spanId: "b".repeat(16),
            name: "x",
            attributes: Object.entries(values).map(([key, v]) => ({ key, value: { intValue: String(v) } })),
          }],
        }],
      }],
    })),
    "application/json",
  );
  assert.deepEqual(json[0].attributes, expected);

  // Protobuf: ExportTraceServiceRequest.resource_spans(1).scope_spans(2).spans(2), Span.attributes(9) of
  // KeyValue{key(1), value(2): AnyValue{int_value(3)}}.
  const span = new BinaryWriter()
    .tag(1, WireType.LengthDelimited).bytes(new Uint8Array(16).fill(0xaa))
    .tag(2, WireType.LengthDelimited).bytes(new Uint8Array(8).fill(0xbb))
    .tag(5, WireType.LengthDelimited).string("x");
  for (const [key, v] of Object.entries(values)) {
    const any = new BinaryWriter().tag(3, WireType.Varint).int64(v).finish();
    span.tag(9, WireType.LengthDelimited).bytes(
      new BinaryWriter().tag(1, WireType.LengthDelimited).string(key).tag(2, WireType.LengthDelimited).bytes(any)
        .finish(),
    );
  }
  const scope = new BinaryWriter().tag(2, WireType.LengthDelimited).bytes(span.finish()).finish();
  const resource = new BinaryWriter().tag(2, WireType.LengthDelimited).bytes(scope).finish();
  const body = new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(resource).finish();
  const proto = decodeExport(body, "application/x-protobuf");
  assert.deepEqual(proto[0].attributes, expected);
});
