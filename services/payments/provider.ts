import { delay } from "@trellis/platform/async";

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
  /**
   * A file in which the simulator keeps every charge and refund it answered, one JSON line each
   * ({@linkcode LedgerEntry}), read back when it is created: like a real provider, it then remembers its charges and
   * idempotency keys across restarts of the payments service, and the file is the statement an auditor compares
   * with the orders. Unset: it remembers nothing beyond the process.
   */
  ledgerPath?: string;
}

/** One line of a simulated provider's ledger. */
export type LedgerEntry =
  | { op: "charge"; key: string; amountCents: number; ref: string; at: string }
  | { op: "decline"; key: string; reason: string; at: string }
  | { op: "refund"; key: string; ref: string; chargeRef?: string; at: string };

/**
 * Reads a simulated provider's ledger; an absent file is an empty ledger.
 *
 * @example
 * ```ts ignore
 * const charges = readLedger("/tmp/ledger.jsonl").filter((e) => e.op === "charge");
 * ```
 */
export function readLedger(path: string): LedgerEntry[] {
  return parseLedger(readLedgerText(path));
}

function readLedgerText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "";
    throw err;
  }
}

function parseLedger(text: string): LedgerEntry[] {
  // A crash can leave a half-written last line: that answer never reached the caller, so it did not happen.
  return text.split("\n").flatMap((line) => {
    try {
      return line ? [JSON.parse(line) as LedgerEntry] : [];
    } catch {
      return [];
    }
  });
}

/** Tokens the simulator declines, as a real provider's test cards do. */
export const DECLINED_TOKENS: Readonly<Record<string, string>> = {
  tok_decline: "card declined",
  tok_insufficient_funds: "insufficient funds",
};

/**
 * A simulated card processor: declines the tokens in {@linkcode DECLINED_TOKENS}, fails transiently at
 * `failureRate`, adds `latencyMs`, and answers a repeated idempotency key with the first answer. It refunds the
 * charges it made, and any `chargeRef` it is given. A real provider keeps its charges; this one does across restarts
 * only with a `ledgerPath`.
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
  const ledgerPath = options.ledgerPath;
  if (ledgerPath) {
    Deno.mkdirSync(ledgerPath.slice(0, Math.max(0, ledgerPath.lastIndexOf("/"))) || ".", { recursive: true });
  }
  const ledgerText = ledgerPath ? readLedgerText(ledgerPath) : "";
  // Whatever a crash cut short stays its own (ignored) line instead of swallowing the next entry.
  if (ledgerPath && ledgerText !== "" && !ledgerText.endsWith("\n")) {
    Deno.writeTextFileSync(ledgerPath, "\n", { append: true });
  }
  for (const e of parseLedger(ledgerText)) {
    if (e.op === "charge") answered.set(e.key, { ok: true, ref: e.ref });
    if (e.op === "decline") answered.set(e.key, { ok: false, reason: e.reason });
    if (e.op === "refund") refunds.set(e.key, e.ref);
  }
  // Written before the answer is returned: an answer the caller saw is on file.
  const record = (entry: LedgerEntry) => {
    if (ledgerPath) Deno.writeTextFileSync(ledgerPath, JSON.stringify(entry) + "\n", { append: true });
  };
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
      const at = new Date().toISOString();
      record(
        result.ok
          ? { op: "charge", key: request.idempotencyKey, amountCents: request.amountCents, ref: result.ref, at }
          : { op: "decline", key: request.idempotencyKey, reason: result.reason, at },
      );
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
      record({
        op: "refund",
        key: request.idempotencyKey,
        ref,
        ...(request.chargeRef ? { chargeRef: request.chargeRef } : {}),
        at: new Date().toISOString(),
      });
      refunds.set(request.idempotencyKey, ref);
      return { refunded: true, ref };
    },
  };
}
