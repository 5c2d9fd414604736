import assert from "node:assert/strict";
import { currentContext } from "../context/mod.ts";
import { HttpError, Router } from "../http/mod.ts";
import { createLogger } from "../log/mod.ts";
import { createJetStreamPubSub, createKafkaPubSub, createNatsPubSub } from "../messaging/mod.ts";
import { createPlatformaticKafkaPubSub } from "../messaging/adapters/kafka/platformatic.ts";
import { startKafka, startNats, within } from "../testing/mod.ts";
import { type Check, Service, type ServiceOptions } from "./service.ts";

/** A service on a free port with a quiet logger, and an HTTP client the test closes so no connection outlives it. */
function setup(options: Partial<ServiceOptions> = {}) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger("svc-test", { level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  const svc = new Service({ name: "svc-test", logger: log, drainMs: 2_000, ...options });
  const client = Deno.createHttpClient({});
  return {
    svc,
    lines,
    fetch: (path: string, init: RequestInit = {}) => fetch(svc.url + path, { ...init, client }),
    async [Symbol.asyncDispose]() {
      await svc.stop();
      client.close();
    },
  };
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

Deno.test("start() runs start hooks in order, then readiness checks, then is ready", async () => {
  await using env = setup();
  const events: string[] = [];
  env.svc
    .onStart("db", () => Promise.resolve(void events.push("start db")))
    .onStart("bus", () => Promise.resolve(void events.push("start bus")))
    .check("db", () => Promise.resolve(void events.push("check db")));
  assert.equal(env.svc.state, "created");
  await env.svc.start();
  assert.deepEqual(events, ["start db", "start bus", "check db"]);
  assert.equal(env.svc.state, "ready");
  assert.match(env.svc.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(env.svc.port > 0);
  await assert.rejects(env.svc.start(), TypeError, "a second start() is refused");
});

Deno.test("/healthz answers 200 with the service name", async () => {
  await using env = setup();
  await env.svc.start();
  const res = await env.fetch("/healthz");
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: "ok", service: "svc-test" });
});

Deno.test("/readyz is 503 naming the failing dependency while start() waits on it, and 200 with every check once it passes", async () => {
  await using env = setup();
  let dbUp = false;
  let checked = deferred();
  const db: Check = () => {
    checked.resolve();
    return dbUp ? Promise.resolve() : Promise.reject(new Error("connection refused"));
  };
  env.svc.check("db", db).check("cache", () => Promise.resolve());
  const started = env.svc.start();
  await within(checked.promise, 2_000, "start() to run the db readiness check");

  const waiting = await env.fetch("/readyz");
  assert.equal(waiting.status, 503);
  const body = await waiting.json();
  assert.equal(body.status, "not ready");
  assert.equal(body.state, "starting");
  assert.deepEqual(Object.keys(body.checks).sort(), ["cache", "db"]);
  assert.equal(body.checks.db.ok, false);
  assert.equal(body.checks.db.error, "connection refused");
  assert.equal(body.checks.cache.ok, true);
  assert.equal(body.checks.cache.error, undefined);
  assert.equal(await env.fetch("/healthz").then((r) => r.body?.cancel()), undefined, "liveness answers meanwhile");

  dbUp = true;
  checked = deferred();
  await within(started, 5_000, "start() to finish once the db check passes");
  const ready = await env.fetch("/readyz");
  assert.equal(ready.status, 200);
  const readyBody = await ready.json();
  assert.equal(readyBody.status, "ready");
  assert.equal(readyBody.service, "svc-test");
  for (const name of ["db", "cache"]) {
    const c = readyBody.checks[name];
    assert.equal(c.ok, true, name);
    assert.ok(Number.isInteger(c.ms) && c.ms >= 0, `${name}.ms is ${c.ms}`);
    assert.deepEqual(Object.keys(c).sort(), ["ms", "ok"], `${name} carries no error when it passed`);
  }
});

Deno.test("/readyz turns 503 when a dependency fails after the service is ready", async () => {
  await using env = setup({ checkCacheMs: 0, checkTimeoutMs: 50 });
  type Mode = "up" | "down" | "hang";
  let mode = "up" as Mode;
  env.svc.check("broker", (signal) => {
    if (mode === "up") return Promise.resolve();
    if (mode === "down") return Promise.reject(new Error("broker unreachable"));
    return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
  });
  await env.svc.start();
  env.svc.check("database", () => Promise.resolve());
  const cases: { mode: Mode; status: number; error?: RegExp }[] = [
    { mode: "down", status: 503, error: /^broker unreachable$/ },
    { mode: "hang", status: 503, error: /timeout/i },
    { mode: "up", status: 200 },
  ];
  for (const c of cases) {
    mode = c.mode;
    const res = await env.fetch("/readyz");
    const body = await res.json();
    assert.equal(res.status, c.status, c.mode);
    assert.equal(body.status, c.status === 200 ? "ready" : "not ready", c.mode);
    assert.equal(body.checks.broker.ok, c.status === 200, c.mode);
    if (c.error) assert.match(body.checks.broker.error, c.error, c.mode);
    else assert.equal(body.checks.broker.error, undefined, c.mode);
    assert.deepEqual(body.checks.database.ok, true, `${c.mode}: the healthy dependency is listed as ok`);
    if (c.mode === "hang") assert.ok(body.checks.broker.ms >= 40, `a hung check took ${body.checks.broker.ms} ms`);
  }
});

Deno.test("/readyz reuses a round of checks for checkCacheMs, then runs them again and flips back to 200 by itself", async () => {
  let now = 0;
  await using env = setup({ checkCacheMs: 1000, now: () => now });
  let up = true;
  let runs = 0;
  env.svc.check("events", () => {
    runs++;
    return up ? Promise.resolve() : Promise.reject(new Error("broker down"));
  });
  await env.svc.start();
  const status = async () => {
    const res = await env.fetch("/readyz");
    const body = await res.json();
    return { status: res.status, events: body.checks.events };
  };
  runs = 0;
  now += 1001;
  up = false;
  const down = await status();
  assert.equal(down.status, 503);
  assert.deepEqual({ ok: down.events.ok, error: down.events.error }, { ok: false, error: "broker down" });
  up = true;
  const cached = await Promise.all([status(), status(), status()]);
  assert.deepEqual(cached.map((c) => c.status), [503, 503, 503], "within checkCacheMs the failed round is reused");
  assert.equal(runs, 1);
  now += 1001;
  const concurrent = await Promise.all([status(), status(), status()]);
  assert.deepEqual(concurrent.map((c) => c.status), [200, 200, 200], "after checkCacheMs it is ready again");
  assert.equal(runs, 2, "concurrent requests share one round of checks");
  assert.equal(concurrent[0].events.ok, true);
});

Deno.test("/metrics exposes http_requests_total labelled with the route template", async () => {
  await using env = setup();
  env.svc.handle(new Router().get("/v1/orders/:id", (_req, { id }) => Promise.resolve(Response.json({ id }))).handler);
  await env.svc.start();
  for (const path of ["/v1/orders/o-1", "/v1/orders/o-2", "/nowhere"]) await (await env.fetch(path)).body?.cancel();
  const res = await env.fetch("/metrics");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/plain/);
  const text = await res.text();
  const series = text.split("\n").filter((l) => l.startsWith("http_requests_total{"));
  const find = (route: string, status: string) =>
    series.find((l) =>
      l.includes(`route="${route}"`) && l.includes(`status="${status}"`) && l.includes('method="GET"') &&
      l.includes('service="svc-test"')
    );
  assert.match(find("/v1/orders/:id", "200") ?? "", / 2$/, text);
  assert.match(find("unmatched", "404") ?? "", / 1$/, text);
  assert.ok(!text.includes("o-1"), "no per-id series");
  assert.match(text, /^http_request_duration_seconds_bucket\{.*route="\/v1\/orders\/:id"/m);
});

Deno.test("/metrics labels a non-standard method OTHER, so clients cannot mint series", async () => {
  await using env = setup();
  env.svc.handle(new Router().get("/v1/ping", () => Promise.resolve(Response.json({ pong: true }))).handler);
  await env.svc.start();
  for (const method of ["FROB", "XYZZY", "GET"]) await (await env.fetch("/v1/ping", { method })).body?.cancel();
  const text = await (await env.fetch("/metrics")).text();
  const series = text.split("\n").filter((l) => l.startsWith("http_requests_total{"));
  assert.ok(!text.includes("FROB") && !text.includes("XYZZY"), text);
  assert.match(series.find((l) => l.includes('method="OTHER"') && l.includes('status="405"')) ?? "", / 2$/, text);
  assert.match(series.find((l) => l.includes('method="GET"') && l.includes('status="200"')) ?? "", / 1$/, text);
});

Deno.test("a handler that throws answers a 500 problem carrying the request id, and is logged", async () => {
  await using env = setup();
  env.svc.handle(() => Promise.reject(new Error("secret internals")));
  await env.svc.start();
  const res = await env.fetch("/v1/x", { headers: { "x-request-id": "boom-1" } });
  assert.equal(res.status, 500);
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  assert.equal(res.headers.get("x-request-id"), "boom-1");
  const body = await res.json();
  assert.equal(body.requestId, "boom-1");
  assert.ok(!JSON.stringify(body).includes("secret"));
  const failed = env.lines.find((l) => l.msg === "handler failed");
  assert.equal(failed?.requestId, "boom-1");
  const access = env.lines.find((l) => l.msg === "request");
  assert.equal(access?.status, 500);
});

Deno.test("a handler's HttpError keeps its status and the handler sees the request context", async () => {
  await using env = setup();
  env.svc.handle(() => Promise.reject(new HttpError(418, "teapot", `short and stout ${currentContext()?.requestId}`)));
  await env.svc.start();
  const res = await env.fetch("/", { headers: { "x-request-id": "tea-1" } });
  assert.equal(res.status, 418);
  assert.equal((await res.json()).title, "short and stout tea-1");
});

Deno.test("stop() lets in-flight requests complete, refuses new ones, then runs stop hooks in reverse order", async () => {
  await using env = setup();
  const events: string[] = [];
  const gate = deferred();
  let entered = 0;
  const allIn = deferred();
  env.svc.handle(async () => {
    if (++entered === 20) allIn.resolve();
    await within(gate.promise, 10_000, "the test to open the handlers' gate");
    events.push("handled");
    return new Response("done");
  });
  env.svc
    .onStop("pool", () => Promise.resolve(void events.push("stop pool")))
    .onStop("consumer", () => Promise.resolve(void events.push("stop consumer")));
  await env.svc.start();
  const url = env.svc.url;

  const inFlight = Array.from({ length: 20 }, async () => {
    const res = await env.fetch("/slow");
    const text = await res.text();
    return { status: res.status, text };
  });
  await within(allIn.promise, 5_000, "all 20 requests in the handler");

  const stopped = env.svc.stop();
  assert.equal(env.svc.state, "draining");

  // A request after stop() began gets 503 or no connection at all.
  const late = await fetch(`${url}/late`).then(
    async (res) => ({ status: res.status, body: await res.text() }),
    (err: unknown) => ({ status: 0, body: String(err) }),
  );
  assert.ok(late.status === 503 || late.status === 0, `late request got ${late.status}: ${late.body}`);
  assert.deepEqual(events, [], "no stop hook runs while requests are in flight");

  gate.resolve();
  const results = await within(Promise.all(inFlight), 5_000, "the 20 in-flight requests to complete");
  await within(stopped, 5_000, "stop() to finish after the drain");
  assert.deepEqual(results, Array.from({ length: 20 }, () => ({ status: 200, text: "done" })));
  assert.deepEqual(events.slice(20), ["stop consumer", "stop pool"]);
  assert.equal(env.svc.state, "stopped");
});

Deno.test("stop() is idempotent: concurrent and repeated calls share one stop and run each hook once", async () => {
  await using env = setup();
  let runs = 0;
  env.svc.onStop("once", () => Promise.resolve(void runs++));
  await env.svc.start();
  const a = env.svc.stop();
  const b = env.svc.stop();
  assert.equal(a, b);
  await within(a, 5_000, "the shared stop()");
  await env.svc.stop();
  assert.equal(runs, 1);
  assert.equal(env.svc.state, "stopped");
});

Deno.test("stop() logs a failing stop hook and still runs the others", async () => {
  await using env = setup();
  const events: string[] = [];
  env.svc
    .onStop("first", () => Promise.resolve(void events.push("first")))
    .onStop("broken", () => Promise.reject(new Error("close failed")));
  await env.svc.start();
  await env.svc.stop();
  assert.deepEqual(events, ["first"]);
  const line = env.lines.find((l) => l.msg === "stop hook failed");
  assert.equal(line?.hook, "broken");
});

Deno.test("start() rejects when a start hook throws, skips later hooks and leaves nothing open", async () => {
  await using env = setup();
  const events: string[] = [];
  const cause = new Error("db unreachable");
  env.svc
    .onStart("db", () => Promise.reject(cause))
    .onStart("bus", () => Promise.resolve(void events.push("start bus")));
  await assert.rejects(env.svc.start(), (err) => err === cause);
  assert.deepEqual(events, []);
  assert.equal(env.svc.state, "stopped");
  assert.throws(() => env.svc.url, TypeError, "no server was opened");
  // The resource sanitizer fails this test if a listener or timer survived.
});

Deno.test("start() rejects when readiness checks never pass, and closes the server it opened", async () => {
  await using env = setup({ drainMs: 100, startTimeoutMs: 300 });
  env.svc.check("db", () => Promise.reject(new Error("still down")));
  await assert.rejects(env.svc.start(), /dependencies not ready: .*still down/);
  assert.equal(env.svc.state, "stopped");
  await assert.rejects(fetch(env.svc.url + "/healthz"), TypeError, "the listener is closed");
});

Deno.test("stop() during start() ends the wait for dependencies: start() rejects and the service never turns ready", async () => {
  const svc = new Service({ name: "never-ready", logger: createLogger("never-ready", { write: () => {} }) });
  svc.check("db", () => Promise.reject(new Error("down")));
  const starting = svc.start();
  await new Promise((r) => setTimeout(r, 50));
  await svc.stop();
  await assert.rejects(
    within(starting, 2_000, "start() to reject once stop() was called"),
    /stopped before its dependencies were ready/,
  );
  assert.equal(svc.state, "stopped");
});

/** Polls `/readyz` every 100 ms until it answers `status`; resolves to the body and how long it took. */
async function readyzUntil(env: ReturnType<typeof setup>, status: number, timeoutMs: number) {
  const started = performance.now();
  for (;;) {
    const res = await env.fetch("/readyz");
    const body = await res.json();
    if (res.status === status) return { body, ms: performance.now() - started };
    if (performance.now() - started > timeoutMs) {
      assert.fail(`/readyz still ${res.status} after ${timeoutMs} ms, not ${status}: ${JSON.stringify(body)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test("/readyz names a NATS bus (Core and JetStream) whose private server is paused or SIGKILLed, and is 200 again by itself once it is back", async () => {
  await using nats = await startNats();
  const quiet = createLogger("messaging", { write: () => {} });
  const core = await createNatsPubSub({ servers: nats.url, logger: quiet });
  const js = await createJetStreamPubSub({ servers: nats.url, logger: quiet });
  try {
    await using env = setup({ checkCacheMs: 0, checkTimeoutMs: 500 });
    env.svc.check("notices", (signal) => core.ping(signal)).check("jobs", (signal) => js.ping(signal));
    await env.svc.start();
    const figures: string[] = [];
    for (const fault of ["pause", "kill"] as const) {
      await (fault === "pause" ? nats.pause() : nats.kill());
      const down = await readyzUntil(env, 503, 5_000);
      assert.equal(down.body.status, "not ready", fault);
      for (const name of ["notices", "jobs"]) {
        assert.equal(down.body.checks[name].ok, false, `${fault}: ${name} ${JSON.stringify(down.body.checks)}`);
        assert.ok(down.body.checks[name].error, `${fault}: ${name} says why`);
        assert.ok(down.body.checks[name].ms <= 700, `${fault}: ${name} took ${down.body.checks[name].ms} ms`);
      }
      await (fault === "pause" ? nats.resume() : nats.start());
      const up = await readyzUntil(env, 200, 30_000);
      assert.ok(up.body.checks.notices.ok && up.body.checks.jobs.ok, JSON.stringify(up.body));
      figures.push(`${fault}: 503 after ${down.ms.toFixed(0)} ms, 200 ${up.ms.toFixed(0)} ms after it was back`);
    }
    console.log(figures.join("; "));
  } finally {
    // A failed assertion can leave the server paused, and closing a connection to it would wait on a drain that never
    // ends: let it run again first.
    await nats.resume().catch(() => {});
    await js.close();
    await core.close();
  }
});

Deno.test("/readyz names a Kafka bus (kafkajs and @platformatic/kafka) whose private broker is SIGKILLed, and is 200 again by itself once it restarts", async () => {
  await using kafka = await startKafka();
  const quiet = createLogger("messaging", { write: () => {} });
  const kafkajs = createKafkaPubSub({ brokers: [kafka.url], logger: quiet });
  const platformatic = createPlatformaticKafkaPubSub({ brokers: [kafka.url], logger: quiet });
  try {
    await using env = setup({ checkCacheMs: 0, checkTimeoutMs: 1000, startTimeoutMs: 60_000 });
    env.svc.check("kafkajs", (signal) => kafkajs.ping(signal))
      .check("platformatic", (signal) => platformatic.ping(signal));
    await env.svc.start();
    await kafka.kill();
    const down = await readyzUntil(env, 503, 10_000);
    for (const name of ["kafkajs", "platformatic"]) {
      const c = down.body.checks[name];
      assert.equal(c.ok, false, `${name}: ${JSON.stringify(down.body.checks)}`);
      assert.ok(c.error, `${name} says why`);
      assert.ok(c.ms <= 1200, `${name} took ${c.ms} ms, past the check timeout`);
    }
    const restarting = performance.now();
    await kafka.start();
    const started = performance.now();
    const up = await readyzUntil(env, 200, 60_000);
    assert.ok(up.body.checks.kafkajs.ok && up.body.checks.platformatic.ok, JSON.stringify(up.body));
    console.log(
      `503 ${down.ms.toFixed(0)} ms after the kill; broker restarted in ${(started - restarting).toFixed(0)} ms, ` +
        `then 200 ${up.ms.toFixed(0)} ms later`,
    );
  } finally {
    await platformatic.close();
    await kafkajs.close();
  }
});
