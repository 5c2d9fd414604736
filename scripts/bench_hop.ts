/**
 * `deno task bench:hop`: the cost of one gateway → orders hop over gRPC, p50/p99 of sequential calls, against the same
 * handler called in-process, in one run. Three ways to reach the same `OrdersService.getOrder` handler:
 *
 * - `in-process`: the handler called as a function (the floor: what the hop would cost with no hop);
 * - `grpc bare`: the platform's client and server (platform/grpc) over loopback, no interceptors;
 * - `grpc as wired`: the gateway's client stack (service token, end-user token, client metrics, resilience policy)
 *   against the orders server's (metrics, authorization verifying both ES256 tokens), as services/ wire them.
 *
 * Client and server share this process, as the in-process call does; calls are made one at a time after a warm-up.
 *
 *   deno task bench:hop [--calls 5000]
 */
import { createIssuer, createVerifier, generateSigningKey, staticKeySet } from "@trellis/platform/auth";
import { runWithContext } from "@trellis/platform/context";
import {
  authorization,
  clientMetrics,
  createGrpcClient,
  endUserToken,
  implement,
  serveGrpc,
  serverMetrics,
  serviceTokenAuthorizer,
} from "@trellis/platform/grpc";
import { createLogger } from "@trellis/platform/log";
import { Registry } from "prom-client";
import { type Order, OrdersServiceService } from "../proto/gen/trellis/orders/v1/orders.ts";
import { quantile } from "./bench/open_loop.ts";
import { cpuMs } from "./bench/proc.ts";
import { cpuModel, loadavg } from "./wrk.ts";

const i = Deno.args.indexOf("--calls");
const calls = i >= 0 ? Number(Deno.args[i + 1]) : 5000;
if (!Number.isInteger(calls) || calls < 100) {
  console.error(`bench:hop: --calls must be an integer of at least 100: current value is ${Deno.args[i + 1]}`);
  Deno.exit(2);
}

const ORDER: Order = {
  id: "0b5f2c1e-8d4a-4f7e-9c3b-2a1d0e9f8c7b",
  customerId: "alice",
  items: [{ sku: "tea-sencha", quantity: 1 }],
  status: "PENDING",
  totalCents: 450,
  reason: "",
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
};
const REQUEST = { id: ORDER.id, customerId: "alice" };
const handlers = {
  getOrder: (req: { id: string }) => Promise.resolve({ ...ORDER, id: req.id }),
  createOrder: () => Promise.reject(new Error("not in this bench")),
};

/** p50/p99 in ms and CPU per call in µs of `call`, made `calls` times one after another after a warm-up. */
async function measure(call: () => Promise<unknown>) {
  for (let n = 0; n < Math.min(1000, calls); n++) await call();
  const times = new Array<number>(calls);
  const cpu0 = await cpuMs(Deno.pid);
  for (let n = 0; n < calls; n++) {
    const t = performance.now();
    await call();
    times[n] = performance.now() - t;
  }
  const cpuUs = (await cpuMs(Deno.pid) - cpu0) * 1000 / calls;
  times.sort((a, b) => a - b);
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99), cpuUs, load: await loadavg() };
}

const ISSUER = "trellis-auth";
const key = await generateSigningKey();
const issuer = createIssuer({ issuer: ISSUER, key });
const verifier = (audience: string) => createVerifier({ issuer: ISSUER, audience, keys: staticKeySet([key]) });
const serviceToken = await issuer.issue({ sub: "gateway", aud: "orders", scopes: ["internal"], ttlSeconds: 3600 });
const userToken = await issuer.issue({ sub: "alice", aud: "api", scopes: ["orders:read"], ttlSeconds: 3600 });
const logger = createLogger("bench-hop", { level: "warn" });

const bare = await serveGrpc({ services: [implement(OrdersServiceService, handlers)], logger });
const serverRegistry = new Registry();
const wired = await serveGrpc({
  services: [implement(OrdersServiceService, handlers)],
  interceptors: [
    serverMetrics(serverRegistry),
    authorization(serviceTokenAuthorizer(verifier("orders"), verifier("api")), { logger }),
  ],
  logger,
});
const bareClient = createGrpcClient(OrdersServiceService, bare.address);
const wiredClient = createGrpcClient(OrdersServiceService, wired.address, {
  token: () => Promise.resolve(serviceToken),
  timeoutMs: 5_000,
  idempotent: ["getOrder"],
  interceptors: [clientMetrics(new Registry()), endUserToken()],
});
// The gateway calls orders inside the request's context, whose principal carries the user's token.
const requestContext = () => ({
  requestId: crypto.randomUUID(),
  signal: new AbortController().signal,
  principal: { sub: "alice", scopes: ["orders:read"], token: userToken },
});

try {
  console.log(`bench:hop cpu=${await cpuModel()} cores=${navigator.hardwareConcurrency} calls=${calls}`);
  const rows: [string, Awaited<ReturnType<typeof measure>>][] = [
    ["in-process", await measure(() => handlers.getOrder(REQUEST))],
    ["grpc bare", await measure(() => bareClient.getOrder(REQUEST))],
    ["grpc as wired", await measure(() => runWithContext(requestContext(), () => wiredClient.getOrder(REQUEST)))],
  ];
  for (const [name, r] of rows) {
    console.log(
      `${name.padEnd(14)} p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms  CPU ${r.cpuUs.toFixed(0)} µs/call` +
        `  (load ${r.load})`,
    );
  }
} finally {
  bareClient.close();
  wiredClient.close();
  await bare.close();
  await wired.close();
}
