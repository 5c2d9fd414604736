/**
 * A `ping` for an adapter: concurrent callers share one run of `roundTrip` (a round trip to the broker that cannot be
 * cancelled), and each caller waits for it at most until its own `signal` aborts, rejecting with the signal's reason.
 * A probe that outlives its callers is therefore never started twice: readiness checks run every second cannot
 * pile up round trips against a broker that stopped answering.
 *
 * @example A ping over a NATS connection
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * import { sharedProbe } from "./_probe.ts";
 * const nc = await connect();
 * const ping = sharedProbe(() => nc.rtt());
 * await ping(AbortSignal.timeout(1000));
 * ```
 */
export function sharedProbe(roundTrip: () => Promise<unknown>): (signal?: AbortSignal) => Promise<void> {
  let inFlight: Promise<void> | undefined;
  return (signal) => {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const shared = inFlight ??= Promise.resolve().then(roundTrip).then(() => {}).finally(() => inFlight = undefined);
    if (!signal) return shared;
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      shared.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  };
}
