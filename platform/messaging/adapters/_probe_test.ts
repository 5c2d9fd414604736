import { deepStrictEqual, rejects, strictEqual } from "node:assert/strict";
import { sharedProbe } from "./_probe.ts";
import { within } from "../../testing/mod.ts";

Deno.test("sharedProbe() runs one round trip for concurrent callers and a new one once it settled", async () => {
  let runs = 0;
  let answer = Promise.withResolvers<void>();
  const ping = sharedProbe(() => {
    runs++;
    return answer.promise;
  });
  const callers = Array.from({ length: 5 }, () => ping(AbortSignal.timeout(5000)));
  await Promise.resolve();
  answer.resolve();
  await within(Promise.all(callers), 1_000, "the five callers sharing one round trip");
  strictEqual(runs, 1);
  answer = Promise.withResolvers<void>();
  answer.resolve();
  await ping();
  strictEqual(runs, 2);
});

Deno.test("sharedProbe() rejects a caller when its signal aborts, while the round trip goes on for the others", async () => {
  let runs = 0;
  const answer = Promise.withResolvers<string>();
  const ping = sharedProbe(() => {
    runs++;
    return answer.promise;
  });
  const impatient = new AbortController();
  const first = ping(impatient.signal);
  const second = ping(AbortSignal.timeout(5000));
  const reason = new Error("gave up");
  impatient.abort(reason);
  await rejects(within(first, 1_000, "the aborted caller to reject"), (err) => err === reason);
  await rejects(ping(AbortSignal.abort(reason)), (err) => err === reason);
  answer.resolve("pong");
  deepStrictEqual(await within(second, 1_000, "the patient caller's round trip"), undefined);
  strictEqual(runs, 1, "neither the abort nor the already-aborted call started another round trip");
});

Deno.test("sharedProbe() passes a failed round trip to every caller and tries again on the next call", async () => {
  let runs = 0;
  const ping = sharedProbe(() => {
    runs++;
    return runs === 1 ? Promise.reject(new Error("connection refused")) : Promise.resolve();
  });
  const both = [ping(), ping(AbortSignal.timeout(5000))];
  for (const p of both) await rejects(p, /connection refused/);
  await ping();
  strictEqual(runs, 2);
});
