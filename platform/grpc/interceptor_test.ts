import assert from "node:assert/strict";
import { Metadata } from "@grpc/grpc-js";
import { NotFoundError } from "./errors.ts";
import {
  chainInterceptors,
  type ClientHandler,
  type ClientInterceptor,
  type OutgoingCall,
  type ServerHandler,
  type ServerInterceptor,
} from "./interceptor.ts";
import { incoming } from "./testdata/order.ts";

/** An interceptor that records entering and leaving under `name`. */
function trace(events: string[], name: string): ServerInterceptor {
  return (next) => async (call) => {
    events.push(`${name} in`);
    try {
      return await next(call);
    } finally {
      events.push(`${name} out`);
    }
  };
}

Deno.test("chainInterceptors() runs interceptors outermost first around the handler and unwinds in reverse", async () => {
  const events: string[] = [];
  const handler: ServerHandler = (call) => {
    events.push("handler");
    return Promise.resolve(call.request);
  };
  const handle = chainInterceptors(trace(events, "a"), trace(events, "b"), trace(events, "c"))(handler);
  assert.deepEqual(await handle(incoming()), { id: "1" });
  assert.deepEqual(events, ["a in", "b in", "c in", "handler", "c out", "b out", "a out"]);
});

Deno.test("chainInterceptors() with none returns the handler itself", () => {
  const handler: ServerHandler = () => Promise.resolve("ok");
  assert.equal(chainInterceptors<ServerHandler>()(handler), handler);
});

Deno.test("an interceptor that answers without calling next short-circuits the rest of the chain", async () => {
  const events: string[] = [];
  const refuse: ServerInterceptor = () => () => Promise.reject(new NotFoundError("cached miss"));
  const handle = chainInterceptors(trace(events, "outer"), refuse, trace(events, "inner"))(() => {
    events.push("handler");
    return Promise.resolve("never");
  });
  await assert.rejects(handle(incoming()), NotFoundError);
  assert.deepEqual(events, ["outer in", "outer out"]);
});

Deno.test("a client interceptor may call next more than once, each time with the same call", async () => {
  const seen: OutgoingCall[] = [];
  const twice: ClientInterceptor = (next) => async (call) => [await next(call), await next(call)];
  const send: ClientHandler = (call) => {
    seen.push(call);
    return Promise.resolve(seen.length);
  };
  const call: OutgoingCall = {
    method: "/m",
    name: "m",
    request: {},
    metadata: new Metadata(),
    options: {},
    deadline: Infinity,
  };
  assert.deepEqual(await chainInterceptors(twice)(send)(call), [1, 2]);
  assert.equal(seen[0], call);
  assert.equal(seen[1], call);
});
