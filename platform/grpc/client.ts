import {
  type CallOptions as GrpcCallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  Client,
  credentials,
  Metadata,
  type ServiceDefinition,
  type ServiceError,
} from "@grpc/grpc-js";
import { backoffDelay, delay, type RetryOptions } from "../async/mod.ts";
import { ContextHeaders, contextHeaders, currentContext } from "../context/mod.ts";
import { DeadlineExceededError, GrpcError, grpcError, status, UnavailableError } from "./errors.ts";
import type { RequestOf, ResponseOf } from "./server.ts";

/** Per-call options for a {@linkcode GrpcClient} method. */
export interface CallOptions {
  /** Time allowed for the call, retries included; the context's remaining budget caps it. @default {the client's `timeoutMs`} */
  timeoutMs?: number;
  /** Cancels the call, in addition to the current context's signal. @default {undefined} */
  signal?: AbortSignal;
  /** Whether the call may be retried on `UNAVAILABLE`/`RESOURCE_EXHAUSTED`. @default {whether the method is listed in the client's `idempotent`} */
  idempotent?: boolean;
  /** Extra metadata to send. @default {{}} */
  metadata?: Readonly<Record<string, string>>;
}

/** Options for {@linkcode createGrpcClient}. */
export interface GrpcClientOptions<D> {
  /** Source of a bearer token sent as `authorization: Bearer <token>` on every call. @default {undefined} (none sent) */
  token?: () => Promise<string>;
  /** Deadline of a call made outside any context or with more budget than this. @default {10_000} */
  timeoutMs?: number;
  /** Methods safe to retry (reads, or writes deduplicated by an idempotency key). @default {[]} */
  idempotent?: readonly (keyof D & string)[];
  /** Retry policy for idempotent calls. @default {{ maxAttempts: 3, baseDelayMs: 50, maxDelayMs: 1000 }} */
  retry?: RetryOptions;
  /** Channel credentials. @default {credentials.createInsecure()} */
  credentials?: ChannelCredentials;
  /** grpc-js channel options (keepalive, message size). @default {{}} */
  channelOptions?: ChannelOptions;
}

/**
 * A promise-based client: one async method per method of the service definition `D`, plus `close()`. Failures reject
 * with {@linkcode GrpcError} or its subclasses (`NotFoundError`, `UnavailableError`, …).
 */
export type GrpcClient<D> =
  & { [K in keyof D]: (request: RequestOf<D[K]>, options?: CallOptions) => Promise<ResponseOf<D[K]>> }
  & Disposable
  & {
    /** Closes the channel; calls in flight fail with `CANCELLED`/`UNAVAILABLE`. Idempotent. */
    close(): void;
  };

const RETRYABLE = new Set<status>([status.UNAVAILABLE, status.RESOURCE_EXHAUSTED]);

/**
 * Creates a typed client for a generated service definition at `address`. Each call carries the current context
 * (request id, traceparent, absolute deadline) as metadata; its deadline is the earlier of `timeoutMs` and the
 * context's remaining budget; it is cancelled when the context signal or `options.signal` aborts; idempotent calls
 * are retried on `UNAVAILABLE`/`RESOURCE_EXHAUSTED` within that deadline.
 *
 * @example Call the orders service with a service token
 * ```ts
 * import { createGrpcClient, implement, serveGrpc } from "./mod.ts";
 * import { type Order, OrdersServiceService } from "../../proto/gen/trellis/orders/v1/orders.ts";
 *
 * const order: Order = {
 *   id: "o-1", customerId: "c-1", items: [], status: "PENDING",
 *   totalCents: 0, reason: "", createdAt: "", updatedAt: "",
 * };
 * await using server = await serveGrpc({
 *   services: [implement(OrdersServiceService, { createOrder: async () => order, getOrder: async () => order })],
 * });
 * using orders = createGrpcClient(OrdersServiceService, server.address, {
 *   token: async () => "service-token",
 *   idempotent: ["getOrder"],
 * });
 * const found = await orders.getOrder({ id: "o-1", customerId: "" }, { timeoutMs: 500 });
 * ```
 */
export function createGrpcClient<D extends ServiceDefinition>(
  definition: D,
  address: string,
  options: GrpcClientOptions<D> = {},
): GrpcClient<D> {
  const { timeoutMs: defaultTimeoutMs = 10_000, retry = {} } = options;
  const { maxAttempts = 3, baseDelayMs = 50, maxDelayMs = 1_000 } = retry;
  if (!(maxAttempts >= 1)) {
    throw new RangeError(`Cannot use retry.maxAttempts as attempts: current value is ${maxAttempts}`);
  }
  if ("close" in definition) throw new TypeError(`Cannot create a client for ${address}: a method is named "close"`);
  const idempotent = new Set<string>(options.idempotent ?? []);
  const client = new Client(address, options.credentials ?? credentials.createInsecure(), options.channelOptions);
  let closed = false;
  const close = () => {
    closed = true;
    client.close();
  };

  const call = async (name: string, request: unknown, callOptions: CallOptions = {}): Promise<unknown> => {
    const method = definition[name];
    const ctx = currentContext();
    const timeoutMs = callOptions.timeoutMs ?? defaultTimeoutMs;
    const deadline = Math.min(Date.now() + timeoutMs, ctx?.deadline ?? Infinity);
    const signals = [ctx?.signal, callOptions.signal].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    const metadata = new Metadata();
    for (const [key, value] of Object.entries({ ...contextHeaders(ctx), ...callOptions.metadata })) {
      metadata.set(key, value);
    }
    if (Number.isFinite(deadline)) metadata.set(ContextHeaders.deadline, String(deadline));
    if (options.token) metadata.set("authorization", `Bearer ${await options.token()}`);
    const retryable = callOptions.idempotent ?? idempotent.has(name);

    for (let attempt = 1;; attempt++) {
      if (closed) throw new UnavailableError(`client for ${address} is closed`);
      // Checked here rather than left to grpc-js, which would still open a connection for a call that cannot succeed.
      if (Date.now() >= deadline) throw new DeadlineExceededError("deadline exceeded before the call was sent");
      try {
        return await unary(client, method.path, method.requestSerialize, method.responseDeserialize, request, {
          metadata,
          deadline,
          signal,
        });
      } catch (err) {
        if (!(err instanceof GrpcError) || !retryable || attempt >= maxAttempts || !RETRYABLE.has(err.code)) throw err;
        const backoff = Math.random() * backoffDelay(attempt, { baseDelayMs, maxDelayMs });
        if (Date.now() + backoff >= deadline) throw err;
        await delay(backoff, signal).catch(() => {
          throw abortError(signal!);
        });
      }
    }
  };

  const stub: Record<PropertyKey, unknown> = { close, [Symbol.dispose]: close };
  for (const name of Object.keys(definition)) {
    stub[name] = (request: unknown, callOptions?: CallOptions) => call(name, request, callOptions);
  }
  return stub as GrpcClient<D>;
}

function unary(
  client: Client,
  path: string,
  serialize: (value: unknown) => Buffer,
  deserialize: (value: Buffer) => unknown,
  request: unknown,
  { metadata, deadline, signal }: { metadata: Metadata; deadline: number; signal?: AbortSignal },
): Promise<unknown> {
  if (signal?.aborted) return Promise.reject(abortError(signal));
  return new Promise((resolve, reject) => {
    const options: GrpcCallOptions = { deadline };
    const call = client.makeUnaryRequest(path, serialize, deserialize, request, metadata, options, (err, response) => {
      signal?.removeEventListener("abort", onAbort);
      if (err) reject(signal?.aborted ? abortError(signal) : fromServiceError(err));
      else resolve(response);
    });
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function fromServiceError(err: ServiceError): GrpcError {
  return grpcError(err.code, err.details || err.message, { cause: err });
}

function abortError(signal: AbortSignal): GrpcError {
  const reason = signal.reason as Error | undefined;
  return reason?.name === "TimeoutError"
    ? new DeadlineExceededError("deadline exceeded", { cause: reason })
    : new GrpcError(status.CANCELLED, "cancelled", { cause: reason });
}
