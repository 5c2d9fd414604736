import { delay } from "../../platform/async/backoff.ts";

/** The outcome of a charge the provider answered. */
export type ChargeResult = { ok: true; ref: string } | { ok: false; reason: string };

/**
 * The provider could not answer (a transient failure): the charge or refund may be retried with the same key. It is
 * `transient`, so a command failing with it is delivered again until the provider answers instead of being
 * dead-lettered: a refund parked in a dead-letter queue would leave a cancelled order charged.
 */
export class ProviderUnavailableError extends Error {
  readonly transient = true;
  constructor(message = "payment provider unavailable") {
    super(message);
    this.name = "ProviderUnavailableError";
  }
}

/** The outcome of a refund the provider answered: `refunded: false` when nothing was charged under the key. */
export type RefundResult = { refunded: true; ref: string } | { refunded: false };

/** A payment provider. `idempotencyKey` makes retries of the same charge, and of the same refund, safe. */
export interface PaymentProvider {
  charge(
    request: { idempotencyKey: string; amountCents: number; token: string },
    signal?: AbortSignal,
  ): Promise<ChargeResult>;
  /**
   * Returns the money of the charge made under `idempotencyKey` (or identified by `chargeRef`, the reference its
   * charge answered); answers the first refund's reference again when repeated, and `refunded: false` when no
   * successful charge exists.
   */
  refund(request: { idempotencyKey: string; chargeRef?: string }, signal?: AbortSignal): Promise<RefundResult>;
}

/** Options for {@linkcode simulatedProvider}. */
export interface SimulatedProviderOptions {
  /** Probability in [0, 1] that a call fails transiently. @default {0} */
  failureRate?: number;
  /** Latency added to every call, in ms. @default {0} */
  latencyMs?: number;
  /** Source of randomness. @default {Math.random} */
  random?: () => number;
}

/** Tokens the simulator declines, as a real provider's test cards do. */
export const DECLINED_TOKENS: Readonly<Record<string, string>> = {
  tok_decline: "card declined",
  tok_insufficient_funds: "insufficient funds",
};

/**
 * A simulated card processor: declines the tokens in {@linkcode DECLINED_TOKENS}, fails transiently at
 * `failureRate`, adds `latencyMs`, and answers a repeated idempotency key with the first answer. It refunds the
 * charges it made, and any `chargeRef` it is given (a real provider keeps its charges; this one forgets them when
 * the process restarts).
 *
 * @example
 * ```ts
 * import { simulatedProvider } from "./provider.ts";
 * const provider = simulatedProvider();
 * await provider.charge({ idempotencyKey: "order-1", amountCents: 450, token: "tok_visa" }); // { ok: true, ref: "ch_…" }
 * await provider.refund({ idempotencyKey: "order-1" }); // { refunded: true, ref: "re_…" }
 * await provider.refund({ idempotencyKey: "order-2" }); // { refunded: false }
 * ```
 */
export function simulatedProvider(options: SimulatedProviderOptions = {}): PaymentProvider {
  const failureRate = options.failureRate ?? 0;
  if (!(failureRate >= 0 && failureRate <= 1)) {
    throw new RangeError(`Cannot use failureRate ${failureRate}: it must be between 0 and 1`);
  }
  const latencyMs = options.latencyMs ?? 0;
  const random = options.random ?? Math.random;
  const answered = new Map<string, ChargeResult>();
  const refunds = new Map<string, string>();
  const reference = (prefix: string) => `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
  return {
    async charge(request, signal) {
      if (latencyMs > 0) await delay(latencyMs, signal);
      signal?.throwIfAborted();
      const previous = answered.get(request.idempotencyKey);
      if (previous) return previous;
      if (random() < failureRate) throw new ProviderUnavailableError();
      const declined = DECLINED_TOKENS[request.token];
      const result: ChargeResult = declined
        ? { ok: false, reason: declined }
        : request.amountCents <= 0
        ? { ok: false, reason: "invalid amount" }
        : { ok: true, ref: reference("ch") };
      answered.set(request.idempotencyKey, result);
      return result;
    },
    async refund(request, signal) {
      if (latencyMs > 0) await delay(latencyMs, signal);
      signal?.throwIfAborted();
      const previous = refunds.get(request.idempotencyKey);
      if (previous) return { refunded: true, ref: previous };
      if (random() < failureRate) throw new ProviderUnavailableError();
      if (!answered.get(request.idempotencyKey)?.ok && !request.chargeRef) return { refunded: false };
      const ref = reference("re");
      refunds.set(request.idempotencyKey, ref);
      return { refunded: true, ref };
    },
  };
}
