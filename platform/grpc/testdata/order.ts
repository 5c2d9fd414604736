/** Fixtures of the gRPC tests: the order they serve and ask for, an orders server with its client, a bare call. */
import { Metadata } from "@grpc/grpc-js";
import { type Order, OrdersServiceService } from "../../../proto/gen/trellis/orders/v1/orders.ts";
import { createGrpcClient, type GrpcClient, type GrpcClientOptions } from "../client.ts";
import { GrpcError, status } from "../errors.ts";
import type { UnaryCall } from "../interceptor.ts";
import { type GrpcServer, implement, serveGrpc, type ServeGrpcOptions, type UnaryHandlers } from "../server.ts";

/** An order with `fields` over the fixture's defaults (id `o-1`, customer `c-1`, PENDING, no items). */
export function order(fields: Partial<Order> = {}): Order {
  return {
    id: "o-1",
    customerId: "c-1",
    items: [],
    status: "PENDING",
    totalCents: 0,
    reason: "",
    createdAt: "",
    updatedAt: "",
    ...fields,
  };
}

/** The fixture order. */
export const ORDER: Order = order();

/** A GetOrder request for the fixture order, by any customer. */
export const GET: { id: string; customerId: string } = { id: "o-1", customerId: "" };

type Orders = typeof OrdersServiceService;

/**
 * An orders server on a free port serving `handlers` (the others answer UNIMPLEMENTED) and a client of it; disposing
 * closes both.
 */
export async function ordersServerAndClient(
  handlers: Partial<UnaryHandlers<Orders>>,
  serverOptions: Partial<ServeGrpcOptions> = {},
  clientOptions: GrpcClientOptions<Orders> = {},
): Promise<{ server: GrpcServer; client: GrpcClient<Orders> } & AsyncDisposable> {
  const server = await serveGrpc({
    services: [
      implement(OrdersServiceService, {
        createOrder: () => Promise.reject(new GrpcError(status.UNIMPLEMENTED, "not in this test")),
        getOrder: () => Promise.reject(new GrpcError(status.UNIMPLEMENTED, "not in this test")),
        ...handlers,
      }),
    ],
    ...serverOptions,
  });
  const client = createGrpcClient(OrdersServiceService, server.address, clientOptions);
  return {
    server,
    client,
    async [Symbol.asyncDispose]() {
      client.close();
      await server.close();
    },
  };
}

/** A call as a server interceptor sees it, for tests that run interceptors without a server. */
export function incoming(): UnaryCall {
  return {
    method: "/test.v1.Test/Get",
    request: { id: "1" },
    metadata: new Metadata(),
    ctx: { requestId: "r-1", signal: new AbortController().signal },
  };
}
