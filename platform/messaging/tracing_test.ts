import assert from "node:assert/strict";
import { startTraceReceiver } from "../telemetry/receiver/mod.ts";
import { waitUntil, within } from "../testing/mod.ts";

const child = new URL("./testdata/request_child.ts", import.meta.url).pathname;

Deno.test("tracePubSub traces a request as a CLIENT span whose child is the responder's process span, and a request nobody answers as an error", async () => {
  await using receiver = startTraceReceiver();
  const { code, stdout, stderr } = await within(
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", child],
      env: { OTEL_DENO: "true", OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: "requester" },
      stdout: "piped",
      stderr: "piped",
    }).output(),
    30_000,
    "the traced child process",
  );
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const [answered, unanswered] = new TextDecoder().decode(stdout).trim().split("\n");
  const spansOf = async (traceId: string, count: number) => {
    await waitUntil(() => (receiver.store.trace(traceId)?.spans.length ?? 0) >= count, 5_000, `${count} spans`);
    const { spans } = await (await fetch(`${receiver.url}/api/traces/${traceId}`)).json();
    return Object.fromEntries(spans.map((s: { name: string }) => [s.name, s]));
  };

  const ok = await spansOf(answered, 3);
  assert.deepEqual(Object.keys(ok).sort(), ["process pricing.quote", "quote", "request pricing.quote"]);
  const request = ok["request pricing.quote"], process = ok["process pricing.quote"];
  assert.equal(request.kind, "client");
  assert.equal(request.parentSpanId, ok["quote"].spanId);
  assert.equal(request.attributes["messaging.system"], "memory");
  assert.equal(request.attributes["messaging.destination.name"], "pricing.quote");
  assert.equal(process.kind, "consumer");
  assert.equal(process.parentSpanId, request.spanId, "the responder's span is the request's child");
  assert.notEqual(request.status.code, "error");

  const failed = await spansOf(unanswered, 2);
  assert.equal(failed["request pricing.nobody"].status.code, "error", JSON.stringify(failed));
});
