import assert from "node:assert/strict";
import { serviceTokenSource } from "../auth/mod.ts";
import { CircuitBreaker, CircuitOpenError, resiliencePolicy } from "../resilience/mod.ts";
import { fetchOf, resilientHttp } from "./resilient_http.ts";

/** A loopback server answering with `answer(n)` to its n-th request (from 1), counting them. */
function server(answer: (n: number, req: Request) => Response | Promise<Response>) {
  let n = 0;
  const srv = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => answer(++n, req));
  return {
    url: `http://127.0.0.1:${srv.addr.port}`,
    get requests() {
      return n;
    },
    [Symbol.asyncDispose]: () => srv.shutdown(),
  };
}

const quick = { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 };

Deno.test("resilientHttp() retries a GET answered 503 on a real socket and returns the 200 that follows", async () => {
  await using srv = server((n) => n < 3 ? new Response("busy", { status: 503 }) : new Response("ok"));
  const send = resilientHttp(resiliencePolicy({ retry: quick }))((req) => fetch(req));
  const res = await send(new Request(`${srv.url}/x`));
  assert.equal(await res.text(), "ok");
  assert.equal(srv.requests, 3);
});

Deno.test("resilientHttp() sends a POST once unless it is declared retryable, and then resends its body", async () => {
  const bodies: string[] = [];
  await using srv = server(async (n, req) => {
    bodies.push(await req.text());
    return n === 1 ? new Response("busy", { status: 503 }) : new Response("done");
  });
  const sendOnce = resilientHttp(resiliencePolicy({ retry: quick }))((req) => fetch(req));
  const first = await sendOnce(new Request(srv.url, { method: "POST", body: "order-1" }));
  assert.equal(first.status, 503);
  await first.body?.cancel();
  assert.equal(srv.requests, 1);
  const keyed = resilientHttp(resiliencePolicy({ retry: quick }), {
    retryable: (r) => r.headers.has("idempotency-key"),
  })(
    (req) => fetch(req),
  );
  const res = await keyed(
    new Request(srv.url, { method: "POST", body: "order-2", headers: { "idempotency-key": "k" } }),
  );
  assert.equal(await res.text(), "done");
  assert.deepEqual(bodies, ["order-1", "order-2"]);
});

Deno.test("resilientHttp() opens the target's circuit after failures, and an open circuit sends nothing", async () => {
  await using srv = server(() => new Response("down", { status: 503 }));
  const breaker = new CircuitBreaker("flaky", { minimumCalls: 3, openMs: 60_000 });
  const send = resilientHttp(resiliencePolicy({ retry: { maxAttempts: 1 }, breaker }))((req) => fetch(req));
  for (let i = 0; i < 3; i++) await (await send(new Request(srv.url))).body?.cancel();
  assert.equal(breaker.state, "open");
  await assert.rejects(send(new Request(srv.url)), CircuitOpenError);
  assert.equal(srv.requests, 3, "the open circuit kept the fourth request from the server");
});

Deno.test("fetchOf(resilientHttp()) serves as the fetch of serviceTokenSource(): a token endpoint's 503 is retried", async () => {
  await using srv = server((n) =>
    n === 1
      ? new Response("starting", { status: 503 })
      : Response.json({ access_token: "t-1", token_type: "Bearer", expires_in: 300 })
  );
  const token = serviceTokenSource({
    tokenUrl: `${srv.url}/oauth/token`,
    clientId: "orders",
    clientSecret: "s",
    audience: "inventory",
    fetch: fetchOf(resilientHttp(resiliencePolicy({ retry: quick }), { retryable: () => true })((r) => fetch(r))),
  });
  assert.equal(await token(), "t-1");
  assert.equal(srv.requests, 2);
});
