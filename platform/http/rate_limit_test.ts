import assert from "node:assert/strict";
import { type Context, runWithContext } from "../context/mod.ts";
import { chain } from "./handler.ts";
import { MemoryRateLimitStore, principalKey, rateLimit, type RateLimitStore } from "./rate_limit.ts";

function limiter(options: { capacity: number; refillPerSec: number; store?: RateLimitStore }) {
  const clock = { t: 1_000_000 };
  let calls = 0;
  const h = chain(rateLimit({
    key: (req) => req.headers.get("x-client") ?? undefined,
    now: () => clock.t,
    ...options,
  }))(() => {
    calls++;
    return Promise.resolve(new Response("ok"));
  });
  const send = async (client?: string) => {
    const res = await h(new Request("http://api/", { headers: client ? { "x-client": client } : {} }));
    const body = res.status === 429 ? await res.json() : await res.text();
    return { res, body };
  };
  return { send, clock, calls: () => calls };
}

Deno.test("rateLimit() allows a burst of capacity, then refills at refillPerSec", async (t) => {
  // Steps run in order against one limiter: [ms to advance, client, expected status, remaining, retry-after].
  const steps: [number, string, number, string, string | null][] = [
    [0, "a", 200, "2", null],
    [0, "a", 200, "1", null],
    [0, "a", 200, "0", null],
    [0, "a", 429, "0", "1"], // 0 tokens at 2/s: 500 ms, rounded up to 1 s
    [0, "b", 200, "2", null], // buckets are per key
    [250, "a", 429, "0", "1"], // half a token
    [250, "a", 200, "0", null], // one whole token
    [5_000, "a", 200, "2", null], // refill stops at capacity
  ];
  const { send, clock } = limiter({ capacity: 3, refillPerSec: 2 });
  for (const [i, [advance, client, status, remaining, retryAfter]] of steps.entries()) {
    await t.step(`step ${i}: +${advance} ms, client ${client} -> ${status}`, async () => {
      clock.t += advance;
      const { res, body } = await send(client);
      assert.equal(res.status, status);
      assert.equal(res.headers.get("ratelimit-limit"), "3");
      assert.equal(res.headers.get("ratelimit-remaining"), remaining);
      assert.equal(res.headers.get("retry-after"), retryAfter);
      if (status === 429) {
        assert.equal(res.headers.get("content-type"), "application/problem+json");
        assert.equal(body.type, "https://trellis.dev/problems/rate-limited");
        assert.equal(body.retryAfterSeconds, Number(retryAfter));
      }
    });
  }
});

Deno.test("rateLimit() rounds Retry-After up to whole seconds", async (t) => {
  const cases: { refillPerSec: number; retryAfter: string }[] = [
    { refillPerSec: 0.1, retryAfter: "10" },
    { refillPerSec: 0.3, retryAfter: "4" }, // 3.34 s
    { refillPerSec: 1, retryAfter: "1" },
    { refillPerSec: 1000, retryAfter: "1" }, // never 0
  ];
  for (const c of cases) {
    await t.step(`${c.refillPerSec}/s -> ${c.retryAfter}`, async () => {
      const { send } = limiter({ capacity: 1, refillPerSec: c.refillPerSec });
      await send("a");
      const { res } = await send("a");
      assert.equal(res.status, 429);
      assert.equal(res.headers.get("retry-after"), c.retryAfter);
    });
  }
});

Deno.test("rateLimit() does not call the handler when refusing, and lets unkeyed requests through", async () => {
  const { send, calls } = limiter({ capacity: 1, refillPerSec: 1 });
  assert.equal((await send("a")).res.status, 200);
  assert.equal((await send("a")).res.status, 429);
  assert.equal(calls(), 1);
  for (let i = 0; i < 5; i++) {
    const { res } = await send();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("ratelimit-limit"), null);
  }
});

Deno.test("rateLimit() uses the store it is given", async () => {
  const seen: unknown[][] = [];
  const store: RateLimitStore = {
    take: (...args) => {
      seen.push(args);
      return Promise.resolve({ allowed: false, remaining: 0, retryAfterMs: 2500 });
    },
  };
  const { send, clock } = limiter({ capacity: 7, refillPerSec: 3, store });
  const { res } = await send("a");
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "3");
  assert.deepEqual(seen, [["a", clock.t, 7, 3]]);
});

Deno.test("principalKey() keys by the context's principal, else by the fallback, else not at all", async (t) => {
  const signal = new AbortController().signal;
  const cases: { name: string; ctx?: Context; fallback?: string; key: string | undefined }[] = [
    {
      name: "principal",
      ctx: { requestId: "r", signal, principal: { sub: "client-1", scopes: [] } },
      fallback: "10.0.0.1",
      key: "principal:client-1",
    },
    { name: "context without principal", ctx: { requestId: "r", signal }, fallback: "10.0.0.1", key: "addr:10.0.0.1" },
    { name: "no context", fallback: "10.0.0.1", key: "addr:10.0.0.1" },
    { name: "nothing known", key: undefined },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const key = principalKey(() => c.fallback);
      const req = new Request("http://api/");
      assert.equal(c.ctx ? runWithContext(c.ctx, () => key(req)) : key(req), c.key);
    });
  }
  assert.equal(principalKey()(new Request("http://api/")), undefined);
});

Deno.test("MemoryRateLimitStore drops idle full buckets on its sweep and keeps partly used ones", () => {
  const store = new MemoryRateLimitStore({ sweepEveryMs: 1000 });
  store.take("idle", 0, 2, 1); // 1 token left: full again at 1000 ms
  store.take("busy", 0, 2, 1);
  store.take("busy", 0, 2, 1); // 0 tokens left: full again at 2000 ms
  assert.equal(store.size, 2);
  store.take("new", 1500, 2, 1); // sweep: idle is full, busy has 1.5
  assert.equal(store.size, 2);
  assert.deepEqual(store.take("busy", 1500, 2, 1), { allowed: true, remaining: 0, retryAfterMs: 0 });
});

Deno.test("MemoryRateLimitStore holds at most maxKeys, dropping the least recently used", () => {
  const store = new MemoryRateLimitStore({ maxKeys: 3 });
  for (const k of ["a", "b", "c"]) store.take(k, 0, 1, 0.001);
  store.take("a", 0, 1, 0.001); // a is now most recent, and empty
  store.take("d", 0, 1, 0.001); // evicts b
  assert.equal(store.size, 3);
  assert.equal(store.take("a", 0, 1, 0.001).allowed, false, "a kept its empty bucket");
  assert.equal(store.take("c", 0, 1, 0.001).allowed, false, "c kept its empty bucket");
  assert.equal(store.take("b", 0, 1, 0.001).allowed, true, "b was forgotten, so it starts full");
  for (let i = 0; i < 10_000; i++) store.take(`flood-${i}`, 0, 1, 0.001);
  assert.equal(store.size, 3);
});

Deno.test("rateLimit() and MemoryRateLimitStore throw for unusable options", () => {
  const key = () => "k";
  const cases: [() => unknown, string, string][] = [
    [
      () => rateLimit({ key: undefined as unknown as typeof key, capacity: 1, refillPerSec: 1 }),
      "TypeError",
      "Cannot rate limit with key as a function: current value is undefined",
    ],
    [
      () => rateLimit({ key, capacity: 0, refillPerSec: 1 }),
      "RangeError",
      "Cannot rate limit with capacity as a positive integer: current value is 0",
    ],
    [
      () => rateLimit({ key, capacity: 1.5, refillPerSec: 1 }),
      "RangeError",
      "Cannot rate limit with capacity as a positive integer: current value is 1.5",
    ],
    [
      () => rateLimit({ key, capacity: 1, refillPerSec: 0 }),
      "RangeError",
      "Cannot rate limit with refillPerSec as a positive number: current value is 0",
    ],
    [
      () => rateLimit({ key, capacity: 1, refillPerSec: Infinity }),
      "RangeError",
      "Cannot rate limit with refillPerSec as a positive number: current value is Infinity",
    ],
    [
      () => new MemoryRateLimitStore({ maxKeys: 0 }),
      "RangeError",
      "Cannot hold rate limit buckets for maxKeys: current value is 0",
    ],
    [
      () => new MemoryRateLimitStore({ sweepEveryMs: -1 }),
      "RangeError",
      "Cannot sweep idle buckets every sweepEveryMs: current value is -1",
    ],
  ];
  for (const [fn, name, message] of cases) assert.throws(fn, { name, message });
});
