import assert from "node:assert/strict";
import type { ReceivedSpan, ReceivedTrace } from "@trellis/platform/telemetry/receiver";
import { waitUntil } from "@trellis/platform/testing";
import { ApiClient, type Endpoints } from "../e2e/scenarios.ts";

/** The shape of one order's trace, for the report and the failure messages. */
export interface TraceShape {
  spans: number;
  services: Record<string, number>;
  depth: number;
}

/**
 * Places one order through the gateway (after a first one that warms the system up), takes the trace id from the response's `traceparent`, waits (bounded) until
 * the receiver at `traces` holds the whole trace {@linkcode assertOrderTrace} expects (processes export in batches, at
 * their own pace), and returns its shape; past the wait, the assertion's own failure is thrown.
 */
export async function traceOneOrder(
  endpoints: Endpoints,
  traces: string,
  buses: { events: string; jobs: string },
): Promise<TraceShape> {
  const api = await ApiClient.login(endpoints);
  const [sku] = Object.keys(await api.stock());
  // A first order warms what a cold system does once (service tokens, connections), which on a busy machine can take
  // longer than a request's budget; the traced order is the next one.
  let warm: { status: number; body: { id: string } } | undefined;
  await waitUntil(
    async () => {
      warm = await api.call("POST", "/v1/orders", { items: [{ sku, quantity: 1 }] });
      return warm.status === 202;
    },
    60_000,
    "a first order to be accepted",
    500,
  );
  await api.settle(warm!.body.id);
  const res = await api.call("POST", "/v1/orders", { items: [{ sku, quantity: 1 }] });
  assert.equal(res.status, 202, JSON.stringify(res.body));
  const traceparent = res.headers.get("traceparent");
  assert.match(traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, "the gateway answers with its traceparent");
  const traceId = traceparent!.split("-")[1];
  assert.equal((await api.settle(res.body.id)).status, "CONFIRMED");
  let trace: ReceivedTrace | undefined;
  const complete = async () => {
    const got = await fetch(`${traces}/api/traces/${traceId}`);
    trace = got.ok ? await got.json() : (await got.body?.cancel(), undefined);
    try {
      return trace !== undefined && assertOrderTrace(trace, buses) !== undefined;
    } catch {
      return false;
    }
  };
  await waitUntil(complete, 30_000, `the whole trace of order ${res.body.id}`, 200).catch((err) => {
    if (trace) assertOrderTrace(trace, buses);
    throw err;
  });
  return assertOrderTrace(trace!, buses);
}

/**
 * Asserts that one trace covers gateway → orders (gRPC) → SQL → outbox → bus → inventory → bus → payments → bus →
 * orders → bus → notifications, every message hop linking consumer to producer to relay to the outbox write. `buses`
 * names the adapter expected on each hop (`messaging.system`). Returns its shape.
 */
export function assertOrderTrace(
  trace: ReceivedTrace,
  buses: { events: string; jobs: string },
): TraceShape {
  const byId = new Map(trace.spans.map((s) => [s.spanId, s]));
  const dump = () => trace.spans.map((s) => `${s.spanId} <- ${s.parentSpanId} ${s.name} [${s.service}]`).join("\n");
  const ancestors = (s: ReceivedSpan) => {
    const out: ReceivedSpan[] = [];
    for (let p = byId.get(s.parentSpanId ?? ""); p; p = byId.get(p.parentSpanId ?? "")) out.push(p);
    return out;
  };
  /** The one span named `name` of `service` below `under` (a descendant, through any number of spans). */
  const below = (under: ReceivedSpan, name: string, service: string, kind?: ReceivedSpan["kind"]) => {
    const found = trace.spans.filter((s) =>
      s.name === name && s.service === service && (!kind || s.kind === kind) && ancestors(s).includes(under)
    );
    assert.equal(found.length, 1, `one ${kind ?? ""} "${name}" of ${service} below "${under.name}":\n${dump()}`);
    return found[0];
  };
  /** The message hop from an outbox write: relay → publish → process, each the direct child of the one before. */
  const hop = (write: ReceivedSpan, topic: string, system: string, consumer: string) => {
    const relay = below(write, `outbox relay ${topic}`, write.service);
    assert.equal(relay.parentSpanId, write.spanId, `the relay of ${topic} continues its outbox write`);
    const publish = below(relay, `publish ${topic}`, write.service, "producer");
    assert.equal(publish.parentSpanId, relay.spanId);
    assert.equal(publish.attributes["messaging.system"], system, `${topic} goes over ${system}`);
    const process = below(publish, `process ${topic}`, consumer, "consumer");
    assert.equal(process.parentSpanId, publish.spanId, `the consumer of ${topic} is the publisher's child`);
    return process;
  };

  const roots = trace.spans.filter((s) => s.parentSpanId === null);
  assert.equal(roots.length, 1, `one root:\n${dump()}`);
  const [root] = roots;
  assert.deepEqual([root.name, root.service, root.kind], ["POST /v1/orders", "gateway", "server"]);
  const createOrder = "trellis.orders.v1.OrdersService/CreateOrder";
  const client = below(root, createOrder, "gateway", "client");
  const server = below(client, createOrder, "orders", "server");
  assert.equal(server.attributes["rpc.grpc.status_code"], 0);
  below(server, "INSERT orders", "orders", "client");
  const write = below(server, "outbox write inventory.commands", "orders", "producer");
  const inserts = trace.spans.filter((s) => s.name === "INSERT outbox" && s.parentSpanId === write.spanId);
  assert.equal(inserts.length, 1, "the outbox write is one INSERT");
  const reserve = hop(write, "inventory.commands", buses.events, "inventory");
  const reserved = hop(
    below(reserve, "outbox write inventory.events", "inventory"),
    "inventory.events",
    buses.events,
    "orders",
  );
  const charge = below(
    below(reserved, "saga inventory.reserved.v1", "orders"),
    "outbox write payments.commands",
    "orders",
  );
  const charged = hop(charge, "payments.commands", buses.events, "payments");
  const paid = hop(
    below(charged, "outbox write payments.events", "payments"),
    "payments.events",
    buses.events,
    "orders",
  );
  const saga = below(paid, "saga payments.succeeded.v1", "orders");
  assert.equal(saga.attributes["saga.outcome"], "applied");
  hop(below(saga, "outbox write order.confirmed", "orders"), "order.confirmed", buses.jobs, "notifications");
  assert.deepEqual(trace.spans.filter((s) => s.status.code === "error").map((s) => s.name), []);
  assert.ok(trace.spans.every((s) => s.traceId === trace.traceId));

  const services: Record<string, number> = {};
  for (const s of trace.spans) services[s.service] = (services[s.service] ?? 0) + 1;
  const depth = Math.max(...trace.spans.map((s) => ancestors(s).length + 1));
  return { spans: trace.spans.length, services, depth };
}
