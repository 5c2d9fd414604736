import assert from "node:assert/strict";
import { serviceTokenSource, type ServiceTokenSourceOptions } from "./service_token.ts";
import { within } from "../testing/mod.ts";

/** A real OAuth 2.0 token endpoint on a loopback socket that counts requests and records the last form. */
function serveTokenEndpoint() {
  const state = {
    requests: 0,
    form: undefined as URLSearchParams | undefined,
    contentType: undefined as string | null | undefined,
    status: 200,
    body: undefined as Record<string, unknown> | undefined,
    expiresIn: 300,
    gate: undefined as Promise<void> | undefined,
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    state.requests++;
    state.contentType = req.headers.get("content-type");
    state.form = new URLSearchParams(await req.text());
    if (state.gate) await within(state.gate, 10_000, "the test to open the token endpoint's gate");
    const body = state.body ??
      { access_token: `tok-${state.requests}`, token_type: "Bearer", expires_in: state.expiresIn };
    return Response.json(body, { status: state.status });
  });
  return {
    state,
    url: `http://127.0.0.1:${server.addr.port}/oauth/token`,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

function source(url: string, clock: { t: number }, options: Partial<ServiceTokenSourceOptions> = {}) {
  return serviceTokenSource({
    tokenUrl: url,
    clientId: "gateway",
    clientSecret: "s3cret-value",
    audience: "orders",
    scopes: ["orders:read", "orders:write"],
    now: () => clock.t,
    ...options,
  });
}

Deno.test("serviceTokenSource() posts a form-encoded client_credentials request", async () => {
  await using server = serveTokenEndpoint();
  const token = source(server.url, { t: 0 });
  assert.equal(await token(), "tok-1");
  assert.equal(server.state.contentType, "application/x-www-form-urlencoded");
  assert.deepEqual(Object.fromEntries(server.state.form!), {
    grant_type: "client_credentials",
    client_id: "gateway",
    client_secret: "s3cret-value",
    audience: "orders",
    scope: "orders:read orders:write",
  });
});

Deno.test("serviceTokenSource() reuses the token until refreshBeforeSec before it expires", async () => {
  await using server = serveTokenEndpoint();
  const clock = { t: 0 };
  const token = source(server.url, clock, { refreshBeforeSec: 30 });
  assert.equal(await token(), "tok-1");
  clock.t = 269_999;
  assert.equal(await token(), "tok-1");
  assert.equal(server.state.requests, 1);
  clock.t = 270_000;
  assert.equal(await token(), "tok-2");
  assert.equal(server.state.requests, 2);
});

Deno.test("serviceTokenSource() refreshes short-lived tokens at half their lifetime", async () => {
  await using server = serveTokenEndpoint();
  server.state.expiresIn = 20;
  const clock = { t: 0 };
  const token = source(server.url, clock, { refreshBeforeSec: 30 });
  await token();
  clock.t = 9_999;
  await token();
  assert.equal(server.state.requests, 1);
  clock.t = 10_000;
  await token();
  assert.equal(server.state.requests, 2);
});

Deno.test("serviceTokenSource() makes concurrent callers share one request", async () => {
  await using server = serveTokenEndpoint();
  const { promise: gate, resolve: open } = Promise.withResolvers<void>();
  server.state.gate = gate;
  const token = source(server.url, { t: 0 });
  const pending = Array.from({ length: 20 }, () => token());
  setTimeout(open, 20);
  assert.deepEqual(
    new Set(await within(Promise.all(pending), 5_000, "the 20 concurrent token() calls")),
    new Set(["tok-1"]),
  );
  assert.equal(server.state.requests, 1);
});

Deno.test("serviceTokenSource() reports an OAuth error without revealing the secret", async () => {
  await using server = serveTokenEndpoint();
  server.state.status = 401;
  server.state.body = { error: "invalid_client", error_description: "unknown client" };
  const token = source(server.url, { t: 0 });
  await assert.rejects(token(), (err: Error) => {
    assert.match(err.message, /HTTP 401 \(invalid_client: unknown client\)/);
    assert.match(err.message, /oauth\/token/);
    assert.doesNotMatch(err.message, /s3cret-value/);
    return true;
  });
  server.state.status = 200;
  server.state.body = undefined;
  assert.equal(await token(), "tok-2", "a failure is not cached");
});

Deno.test("serviceTokenSource() refuses responses that are not bearer tokens with a lifetime", async () => {
  await using server = serveTokenEndpoint();
  const token = source(server.url, { t: 0 });
  server.state.body = { token_type: "Bearer", expires_in: 60 };
  await assert.rejects(token(), /no access_token/);
  server.state.body = { access_token: "t", token_type: "mac", expires_in: 60 };
  await assert.rejects(token(), /token_type is mac/);
  server.state.body = { access_token: "t", token_type: "bearer", expires_in: "60" };
  await assert.rejects(token(), /expires_in is 60/);
});

Deno.test("serviceTokenSource() keeps serving a still-valid token while a refresh fails", async () => {
  await using server = serveTokenEndpoint();
  const clock = { t: 0 };
  const token = source(server.url, clock);
  assert.equal(await token(), "tok-1");
  server.state.status = 503;
  clock.t = 290_000;
  assert.equal(await token(), "tok-1");
  clock.t = 300_000;
  await assert.rejects(token(), /HTTP 503/);
});

Deno.test("serviceTokenSource() names the endpoint when it cannot connect", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  const token = source(`http://127.0.0.1:${port}/oauth/token`, { t: 0 });
  await assert.rejects(token(), new RegExp(`Cannot get a service token from http://127.0.0.1:${port}/oauth/token`));
});

Deno.test("serviceTokenSource() aborts a request that outlives timeoutMs", async () => {
  await using server = serveTokenEndpoint();
  const { promise: gate, resolve: open } = Promise.withResolvers<void>();
  server.state.gate = gate;
  const token = source(server.url, { t: 0 }, { timeoutMs: 50 });
  await assert.rejects(token(), /timed out after 50 ms/);
  open();
});
