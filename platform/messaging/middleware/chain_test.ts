import { deepStrictEqual } from "node:assert/strict";
import type { Message } from "../message.ts";
import { chainHandlers, type HandlerMiddleware } from "./chain.ts";

const msg: Message = { id: "m-1", headers: {}, payload: new Uint8Array(), attempt: 1, timestamp: 0 };

Deno.test("chainHandlers() runs the middleware outermost first, then the handler", async () => {
  const calls: string[] = [];
  const mark = (name: string): HandlerMiddleware => (next) => async (m) => {
    calls.push(`${name} in`);
    await next(m);
    calls.push(`${name} out`);
  };
  await chainHandlers(mark("a"), mark("b"))(() => void calls.push("handler"))(msg);
  deepStrictEqual(calls, ["a in", "b in", "handler", "b out", "a out"]);
});

Deno.test("chainHandlers() without middleware returns the handler itself", () => {
  const handler = () => {};
  deepStrictEqual(chainHandlers()(handler), handler);
});
