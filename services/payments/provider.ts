import { delay } from "../../platform/async/backoff.ts";

/** The outcome of a charge the provider answered. */
export type ChargeResult = { ok: true; ref: string } | { ok: false; reason: string };

/** The provider could not answer (a transient failure): the charge may be retried with the same key. */
export class ProviderUnavailableError extends Error {
  constructor(message = "payment provider unavailable") {
    super(message);
    this.name = "ProviderUnavailableError";
  }
}

/** A payment provider. `idempotencyKey` makes retries of the same charge safe. */
export interface PaymentProvider {
  charge(
    request: { idempotencyKey: string; amountCents: number; token: string },
    signal?: AbortSignal,
  ): Promise<ChargeResult>;
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
 * `failureRate`, adds `latencyMs`, and answers a repeated idempotency key with the first answer.
 */
export function simulatedProvider(options: SimulatedProviderOptions = {}): PaymentProvider {
  const failureRate = options.failureRate ?? 0;
  if (!(failureRate >= 0 && failureRate <= 1)) {
    throw new RangeError(`Cannot use failureRate ${failureRate}: it must be between 0 and 1`);
  }
  const latencyMs = options.latencyMs ?? 0;
  const random = options.random ?? Math.random;
  const answered = new Map<string, ChargeResult>();
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
        : { ok: true, ref: `ch_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}` };
      answered.set(request.idempotencyKey, result);
      return result;
    },
  };
}
