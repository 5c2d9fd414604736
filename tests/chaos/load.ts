/**
 * The chaos suite's customers: a steady stream of `POST /v1/orders` through the gateway, each client retrying with
 * the same `Idempotency-Key` on a 5xx, a 429, a 409 (the same key still in flight at the gateway) or a broken
 * connection, as a well-behaved client of an at-least-once API does.
 */

import { within } from "@trellis/platform/testing";

/** One order the load placed. */
export interface Placed {
  key: string;
  items: { sku: string; quantity: number }[];
  declined: boolean;
  /** The order id the gateway answered with (2xx); undefined when the client gave up. */
  id?: string;
  /** Every id answered for this key; more than one is an idempotency violation. */
  ids: Set<string>;
  attempts: number;
  /** When the 2xx arrived (epoch ms). */
  acceptedAt?: number;
  /** The last failure seen, for the report. */
  lastError?: string;
}

/** What {@linkcode runLoad} did. */
export interface LoadResult {
  placed: Placed[];
  /** Responses and failures by kind ("202", "503", "connection", "timeout", ...). */
  outcomes: Record<string, number>;
  /** Orders answered with a 4xx other than 409 and 429 (none is expected: every order is valid). */
  refused: { key: string; status: number; body: string }[];
}

/** Options for {@linkcode runLoad}. */
export interface LoadOptions {
  gateway: string;
  token: string;
  orders: number;
  ratePerSec: number;
  /** Share of orders paid with a card the simulated provider declines. @default {0.05} */
  declineRate?: number;
  /** A client stops retrying this long after its first attempt. @default {90000} */
  giveUpMs?: number;
  /** Per-attempt timeout. @default {5000} */
  attemptTimeoutMs?: number;
  /** Called with each order's index once it is sent the first time (the suite injects faults from here). */
  onSent?: (index: number) => void;
}

const SKUS = ["tea-sencha", "mug-blue", "kettle"];

/**
 * Places `orders` orders at a constant rate (open loop: a slow answer does not delay the next order) and resolves
 * once every client has an answer or has given up.
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const declineRate = options.declineRate ?? 0.05;
  const giveUpMs = options.giveUpMs ?? 90_000;
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 5_000;
  const outcomes: Record<string, number> = {};
  const refused: LoadResult["refused"] = [];
  const count = (k: string) => outcomes[k] = (outcomes[k] ?? 0) + 1;
  const run = crypto.randomUUID().slice(0, 8);
  const placed: Placed[] = Array.from({ length: options.orders }, (_, i) => ({
    key: `chaos-${run}-${i}`,
    items: [{ sku: SKUS[i % SKUS.length], quantity: 1 + (i % 2) }],
    // Spread evenly rather than at random, so every run declines the same share.
    declined: Math.floor((i + 1) * declineRate) > Math.floor(i * declineRate),
    ids: new Set(),
    attempts: 0,
  }));

  const place = async (p: Placed) => {
    const first = Date.now();
    let backoff = 200;
    while (true) {
      p.attempts++;
      let retry = false;
      try {
        const res = await fetch(`${options.gateway}/v1/orders`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${options.token}`,
            "content-type": "application/json",
            "idempotency-key": p.key,
          },
          body: JSON.stringify({ items: p.items, ...(p.declined ? { paymentToken: "tok_decline" } : {}) }),
          signal: AbortSignal.timeout(attemptTimeoutMs),
        });
        const text = await res.text();
        count(String(res.status));
        if (res.status >= 200 && res.status < 300) {
          const id = JSON.parse(text).id as string;
          p.ids.add(id);
          p.id = id;
          p.acceptedAt = Date.now();
          return;
        }
        if (res.status >= 500 || res.status === 429 || res.status === 409) {
          p.lastError = `${res.status} ${text.slice(0, 200)}`;
          retry = true;
        } else {
          refused.push({ key: p.key, status: res.status, body: text.slice(0, 500) });
          return;
        }
      } catch (err) {
        const kind = (err as Error).name === "TimeoutError" ? "timeout" : "connection";
        count(kind);
        p.lastError = `${kind}: ${(err as Error).message}`;
        retry = true;
      }
      if (!retry || Date.now() - first > giveUpMs) return;
      await new Promise((r) => setTimeout(r, backoff * (0.5 + Math.random() / 2)));
      backoff = Math.min(backoff * 2, 2_000);
    }
  };

  const started = performance.now();
  const clients: Promise<void>[] = [];
  for (let i = 0; i < placed.length; i++) {
    const due = started + (i * 1000) / options.ratePerSec;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    clients.push(place(placed[i]));
    options.onSent?.(i);
  }
  // Each client gives up after giveUpMs, plus at most one attempt and one backoff.
  await within(
    Promise.all(clients),
    giveUpMs + attemptTimeoutMs + 5_000,
    `each of the ${placed.length} clients to be answered or give up`,
  );
  return { placed, outcomes, refused };
}
