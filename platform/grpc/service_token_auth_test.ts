import assert from "node:assert/strict";
import { createIssuer, createVerifier, generateSigningKey, staticKeySet } from "../auth/mod.ts";
import { runWithContext } from "../context/mod.ts";
import { type Order, OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
import { GET } from "./testdata/order.ts";
import { within } from "../testing/mod.ts";
import { authorization } from "./authorization.ts";
import { createGrpcClient } from "./client.ts";
import { endUserToken } from "./client_interceptors.ts";
import { PermissionDeniedError, UnauthenticatedError, UnavailableError } from "./errors.ts";
import { implement, serveGrpc } from "./server.ts";
import { serviceTokenAuthorizer, serviceTokens } from "./service_token_auth.ts";

const ISSUER = "https://auth.test";
/** An issuer and an orders server that accepts its service tokens (audience `orders`) and end-user tokens (`api`). */
async function setup() {
  const key = await generateSigningKey();
  const issuer = createIssuer({ issuer: ISSUER, key });
  const verifierFor = (audience: string) => createVerifier({ issuer: ISSUER, audience, keys: staticKeySet([key]) });
  const server = await serveGrpc({
    services: [
      implement(OrdersServiceService, {
        getOrder: (_req, ctx): Promise<Order> =>
          Promise.resolve({
            id: "o-1",
            customerId: ctx.endUser?.sub ?? "",
            items: [],
            status: "PENDING",
            totalCents: 0,
            reason: ctx.principal?.sub ?? "",
            createdAt: "",
            updatedAt: "",
          }),
        createOrder: () => Promise.reject(new Error("not in this test")),
      }),
    ],
    interceptors: [authorization(serviceTokenAuthorizer(verifierFor("orders"), verifierFor("api")))],
  });
  const token = (sub: string, aud: string, scopes: string[]) => issuer.issue({ sub, aud, scopes, ttlSeconds: 60 });
  const clientWith = (source?: () => Promise<string>) =>
    createGrpcClient(OrdersServiceService, server.address, { token: source, interceptors: [endUserToken()] });
  return { server, token, clientWith, [Symbol.asyncDispose]: () => server.close() };
}

Deno.test("serviceTokenAuthorizer() admits an internal service token addressed to it and names the caller", async () => {
  await using env = await setup();
  const svcToken = await env.token("gateway", "orders", ["internal"]);
  using client = env.clientWith(() => Promise.resolve(svcToken));
  assert.equal((await client.getOrder(GET)).reason, "gateway");
});

Deno.test("serviceTokenAuthorizer() refuses a missing or foreign token and one without the internal scope", async () => {
  await using env = await setup();
  using anonymous = env.clientWith();
  await assert.rejects(anonymous.getOrder(GET), UnauthenticatedError);
  const foreign = await env.token("gateway", "payments", ["internal"]);
  using misdirected = env.clientWith(() => Promise.resolve(foreign));
  await assert.rejects(misdirected.getOrder(GET), UnauthenticatedError);
  const unscoped = await env.token("gateway", "orders", ["orders:read"]);
  using outsider = env.clientWith(() => Promise.resolve(unscoped));
  await assert.rejects(outsider.getOrder(GET), PermissionDeniedError);
});

Deno.test("serviceTokenAuthorizer() verifies a forwarded end-user token into ctx.endUser and refuses a bad one", async () => {
  await using env = await setup();
  const svcToken = await env.token("gateway", "orders", ["internal"]);
  using client = env.clientWith(() => Promise.resolve(svcToken));
  const asUser = async (token: string) => {
    const principal = { sub: "u-7", scopes: [], token };
    return await runWithContext(
      { requestId: "r-1", signal: new AbortController().signal, principal },
      () => client.getOrder(GET),
    );
  };
  assert.equal((await asUser(await env.token("u-7", "api", ["orders:read"]))).customerId, "u-7");
  await assert.rejects(asUser(await env.token("u-7", "orders", ["orders:read"])), UnauthenticatedError);
});

Deno.test("serviceTokens() gets a client-credentials token that a serviceTokenAuthorizer accepts", async () => {
  await using env = await setup();
  const requests: URLSearchParams[] = [];
  await using tokenServer = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const form = new URLSearchParams(await req.text());
    requests.push(form);
    const access = await env.token(form.get("client_id")!, form.get("audience")!, ["internal"]);
    return Response.json({ access_token: access, token_type: "Bearer", expires_in: 60 });
  });
  const source = serviceTokens({
    tokenUrl: `http://127.0.0.1:${tokenServer.addr.port}/oauth/token`,
    clientId: "gateway",
    clientSecret: "s3cret",
    audience: "orders",
  });
  using client = env.clientWith(source);
  assert.equal((await within(client.getOrder(GET), 5_000, "the authorized call")).reason, "gateway");
  await within(client.getOrder(GET), 5_000, "the second call, on the cached token");
  assert.equal(requests.length, 1, "the token is cached");
});

Deno.test("serviceTokens() reports an unreachable token endpoint as UnavailableError", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  const source = serviceTokens({
    tokenUrl: `http://127.0.0.1:${port}/oauth/token`,
    clientId: "gateway",
    clientSecret: "s3cret",
    audience: "orders",
  });
  await assert.rejects(within(source(), 5_000, "the token request"), UnavailableError);
});
