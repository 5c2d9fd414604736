import { DeadlineExceededError, GrpcError, status } from "./errors.ts";

/** The error a call aborted by `signal` fails with: `DEADLINE_EXCEEDED` for a timeout, else `CANCELLED`. */
export function abortError(signal: AbortSignal): GrpcError {
  const reason = signal.reason as Error | undefined;
  return reason?.name === "TimeoutError"
    ? new DeadlineExceededError("deadline exceeded", { cause: reason })
    : new GrpcError(status.CANCELLED, "cancelled", { cause: reason });
}
