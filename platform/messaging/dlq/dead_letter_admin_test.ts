import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { createIssuer, createVerifier, generateSigningKey, staticKeySet } from "../../auth/mod.ts";
import { chain, type Handler, requestContext } from "../../http/mod.ts";
import { createMemoryBroker, type MemoryBroker } from "../adapters/memory.ts";
import { deadLetter } from "../middleware/mod.ts";
import { within } from "../../testing/mod.ts";
import { deadLetterAdmin } from "./dead_letter_admin.ts";

const key = await generateSigningKey();
const issuer = createIssuer({ issuer: "https://auth", key });
const token = (scopes: string[], aud = "orders") => issuer.issue({ sub: "ops", aud, scopes, ttlSeconds: 60 });
const enc = (s: string) => new TextEncoder().encode(s);

interface Env extends AsyncDisposable {
  bus: MemoryBroker;
  call(method: string, path: string, options?: { body?: string; scopes?: string[]; aud?: string }): Promise<Response>;
  park(source: string, id: string, error: string, payload?: Uint8Array): Promise<void>;
}

function setup(): Env {
  const bus = createMemoryBroker();
  const handler: Handler = chain(
    requestContext(),
    deadLetterAdmin({
      verifier: createVerifier({ issuer: "https://auth", audience: "orders", keys: staticKeySet([key]) }),
      sources: ["inventory.events.dlq", "payments.events.dlq"].map((topic) => ({
        topic,
        bus: () => Promise.resolve(bus),
      })),
    }),
  )(() => Promise.resolve(new Response("app")));
  return {
    bus,
    async call(method, path, options = {}) {
      const headers = new Headers({
        authorization: `Bearer ${await token(options.scopes ?? ["ops:dlq"], options.aud)}`,
      });
      if (options.body !== undefined) headers.set("content-type", "application/json");
      return handler(new Request(`http://orders${path}`, { method, headers, body: options.body }));
    },
    async park(source, id, error, payload = enc(`{"orderId":"${id}"}`)) {
      await deadLetter(source, { publisher: bus, maxAttempts: 1 })(() => {
        throw new Error(error);
      })({ id, key: id, headers: {}, payload, attempt: 1, timestamp: 0 });
    },
    [Symbol.asyncDispose]: () => bus.close(),
  };
}

async function problem(res: Response, status: number): Promise<string> {
  strictEqual(res.status, status);
  strictEqual(res.headers.get("content-type"), "application/problem+json");
  return (await res.json()).detail ?? "";
}

Deno.test("deadLetterAdmin() lists, shows, redrives and purges a service's dead letters over HTTP", async () => {
  await using env = setup();
  await env.park("inventory.events", "m-1", "no such order");
  await env.park("payments.events", "m-2", "card declined", new Uint8Array([0xff, 0xfe]));
  await env.park("payments.events", "m-3", "card declined");

  const listed = await env.call("GET", "/admin/dlq");
  strictEqual(listed.status, 200);
  const { letters } = await listed.json();
  deepStrictEqual(letters.map((l: { messageId: string }) => l.messageId), ["m-1", "m-2", "m-3"]);
  strictEqual(letters[0].id, "inventory.events.dlq@0");
  strictEqual(letters[0].sourceTopic, "inventory.events");
  strictEqual(letters[0].error, "Error: no such order");
  strictEqual(letters[0].attempts, 1);
  const filtered = await (await env.call("GET", "/admin/dlq?source=payments.events&error=declined&limit=1")).json();
  deepStrictEqual(filtered.letters.map((l: { messageId: string }) => l.messageId), ["m-2"]);

  const text = await (await env.call("GET", "/admin/dlq/inventory.events.dlq@0")).json();
  deepStrictEqual([text.payload, text.payloadEncoding], ['{"orderId":"m-1"}', "utf-8"]);
  strictEqual(text.headers["dlq-source-topic"], "inventory.events");
  const binary = await (await env.call("GET", `/admin/dlq/${encodeURIComponent(letters[1].id)}`)).json();
  deepStrictEqual([binary.payload, binary.payloadEncoding], ["//4=", "base64"]);

  const redriven = await env.call("POST", "/admin/dlq/redrive", {
    body: JSON.stringify({ ids: [letters[0].id, letters[1].id], ratePerSec: 1000 }),
  });
  deepStrictEqual(await redriven.json(), { redriven: 2 });
  const back = await within(Array.fromAsync(env.bus.deadLetters.scan("payments.events")), 1000, "a scan");
  deepStrictEqual(back.map((l) => l.message.id), ["m-2"]);

  const purged = await env.call("POST", "/admin/dlq/purge", {
    body: JSON.stringify({ filter: { error: "declined" } }),
  });
  deepStrictEqual(await purged.json(), { purged: 1 });
  deepStrictEqual(await (await env.call("GET", "/admin/dlq")).json(), { letters: [] });
  strictEqual(await (await env.call("GET", "/v1/orders")).text(), "app", "other paths reach the service");
});

Deno.test("deadLetterAdmin() answers bad input, unknown ids, unfiltered purges and missing scopes with problem+json", async () => {
  await using env = setup();
  await env.park("inventory.events", "m-1", "no such order");
  const bad = { body: "{not json" };
  strictEqual((await problem(await env.call("POST", "/admin/dlq/redrive", bad), 400)).includes("JSON"), true);
  await problem(await env.call("GET", "/admin/dlq/inventory.events.dlq@99"), 404);
  await problem(await env.call("GET", "/admin/dlq/no-topic"), 404);
  const unfiltered = await problem(await env.call("POST", "/admin/dlq/purge", { body: "{}" }), 400);
  strictEqual(unfiltered.includes('"all": true'), true);
  await problem(await env.call("POST", "/admin/dlq/purge", { body: '{"filter":{}}' }), 400);
  await problem(await env.call("POST", "/admin/dlq/purge", { body: '{"all":false}' }), 400);
  await problem(await env.call("POST", "/admin/dlq/redrive", { body: '{"ids":"m-1"}' }), 400);
  await problem(await env.call("POST", "/admin/dlq/redrive", { body: '{"ids":["m-1"]}' }), 400);
  await problem(await env.call("POST", "/admin/dlq/redrive", { body: '{"ratePerSec":0}' }), 400);
  await problem(await env.call("POST", "/admin/dlq/redrive", { body: '{"rate":5}' }), 400);
  await problem(await env.call("GET", "/admin/dlq?failedAfter=yesterday"), 400);
  await problem(await env.call("GET", "/admin/dlq?limit=0"), 400);
  await problem(await env.call("GET", "/admin/dlq", { scopes: ["keys:read"] }), 403);
  await problem(await env.call("GET", "/admin/dlq", { aud: "payments" }), 401);
  strictEqual((await env.call("GET", "/admin/dlq")).status, 200);
  deepStrictEqual(
    (await (await env.call("GET", "/admin/dlq")).json()).letters.map((l: { messageId: string }) => l.messageId),
    ["m-1"],
    "nothing was redriven or purged by the refused requests",
  );
});
