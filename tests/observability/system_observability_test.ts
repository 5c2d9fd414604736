import assert from "node:assert/strict";
import { waitUntil, within } from "@trellis/platform/testing";
import { startCluster } from "../support/cluster.ts";
import { ApiClient } from "../e2e/scenarios.ts";
import { startPrometheus } from "./prometheus.ts";
import { promtool } from "./promtool.ts";

const SERVICES = ["gateway", "auth", "orders", "inventory", "payments", "notifications"] as const;

/** Families every service exposes: runtime defaults and HTTP RED. */
const COMMON = [
  "process_cpu_seconds_total",
  "process_resident_memory_bytes",
  "nodejs_heap_size_used_bytes",
  "nodejs_eventloop_lag_seconds",
  "http_requests_total",
  "http_request_duration_seconds",
];

/** Families each service exposes beyond {@linkcode COMMON}, given what it does. */
const OWN: Record<(typeof SERVICES)[number], string[]> = {
  gateway: ["grpc_client_handled_total", "grpc_client_handling_seconds", "circuit_breaker_state"],
  auth: ["db_client_operation_duration_seconds", "db_client_connections_in_use", "db_client_connections_waiting"],
  orders: [
    "grpc_server_handled_total",
    "grpc_client_handled_total",
    "db_client_operation_duration_seconds",
    "db_client_errors_total",
    "db_client_connections_in_use",
    "messaging_published_total",
    "messaging_consumed_total",
    "messaging_handler_duration_seconds",
    "messaging_handler_failures_total",
    "messaging_redeliveries_total",
    "messaging_dead_lettered_total",
    "messaging_in_flight",
    "messaging_consumer_lag_messages",
    "outbox_backlog",
    "outbox_oldest_unpublished_age_seconds",
    "orders_sagas_started_total",
    "orders_sagas_completed_total",
    "orders_saga_step_duration_seconds",
    "orders_sagas_past_deadline",
    "orders_deadline_exceeded_total",
  ],
  inventory: [
    "grpc_server_handled_total",
    "db_client_operation_duration_seconds",
    "messaging_consumed_total",
    "messaging_published_total",
    "messaging_consumer_lag_messages",
    "outbox_oldest_unpublished_age_seconds",
  ],
  payments: [
    "db_client_operation_duration_seconds",
    "messaging_consumed_total",
    "messaging_published_total",
    "messaging_consumer_lag_messages",
    "outbox_oldest_unpublished_age_seconds",
  ],
  notifications: ["messaging_consumed_total", "messaging_handler_duration_seconds", "messaging_consumer_lag_messages"],
};

function randomBase64(bytes: number): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(bytes))));
}

/** The sum of the samples of `text` named `name` whose labels include every `labels` pair; undefined when none. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let sum: number | undefined;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== "{" && line[name.length] !== " ")) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) {
      sum = (sum ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return sum;
}

Deno.test("a running system after an order: every /metrics passes promtool, Prometheus scrapes all six services, and no log line holds a secret", async (t) => {
  const secrets: Record<string, string> = {
    GATEWAY_CLIENT_SECRET: `gw-secret-${crypto.randomUUID()}`,
    ORDERS_CLIENT_SECRET: `orders-secret-${crypto.randomUUID()}`,
    OPS_CLIENT_SECRET: `ops-secret-${crypto.randomUUID()}`,
    AUTH_KEY_ENCRYPTION_KEY: randomBase64(32),
  };
  await using cluster = await startCluster({ env: { ...secrets, LOG_LEVEL: "debug" } });
  const { endpoints } = cluster;
  const searched: Record<string, string> = { ...secrets, "alice's password": "wonderland" };

  await t.step("a customer logs in, fails a login, and places an order that confirms", async () => {
    const wrong = `wrong-password-${crypto.randomUUID()}`;
    searched["a wrong password"] = wrong;
    const refused = await fetch(`${endpoints.auth}/oauth/token`, {
      method: "POST",
      body: new URLSearchParams({ grant_type: "password", username: "alice", password: wrong }),
    });
    assert.equal(refused.status, 400, await refused.text());
    const alice = await ApiClient.login(endpoints);
    searched["alice's access token"] = alice.token;
    const forged = await fetch(`${endpoints.gateway}/v1/products`, {
      headers: { authorization: "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.Zm9yZ2Vk" },
    });
    await forged.body?.cancel();
    assert.equal(forged.status, 401);
    // One order, under an idempotency key: on a loaded machine the first call may outlive the gateway's deadline
    // (504) after orders committed it, and the retry then returns that same order.
    const key = crypto.randomUUID();
    let placed: { status: number; body: { id: string } } | undefined;
    for (let attempt = 1; attempt <= 3 && !(placed?.status === 202); attempt++) {
      placed = await alice.call("POST", "/v1/orders", { items: [{ sku: "mug-blue", quantity: 1 }] }, {
        "idempotency-key": key,
      });
      assert.ok(placed.status === 202 || placed.status >= 500, JSON.stringify(placed.body));
    }
    assert.equal(placed?.status, 202, JSON.stringify(placed?.body));
    const settled = await alice.settle(placed!.body.id);
    assert.equal(settled.status, "CONFIRMED", JSON.stringify(settled));
  });

  await t.step("an operator lists the signing keys with the ops client's credentials", async () => {
    const basic = btoa(`ops:${secrets.OPS_CLIENT_SECRET}`);
    searched["the ops Basic credentials"] = basic;
    const tokenRes = await fetch(`${endpoints.auth}/oauth/token`, {
      method: "POST",
      headers: { authorization: `Basic ${basic}` },
      body: new URLSearchParams({ grant_type: "client_credentials", audience: "auth" }),
    });
    assert.equal(tokenRes.status, 200, await tokenRes.clone().text());
    const { access_token: opsToken } = await tokenRes.json();
    searched["the ops access token"] = opsToken;
    const keys = await fetch(`${endpoints.auth}/admin/keys`, { headers: { authorization: `Bearer ${opsToken}` } });
    assert.equal(keys.status, 200, await keys.clone().text());
    assert.ok((await keys.json()).keys.length >= 1);
    const badSecret = await fetch(`${endpoints.auth}/oauth/token`, {
      method: "POST",
      headers: { authorization: `Basic ${btoa(`ops:${secrets.GATEWAY_CLIENT_SECRET}`)}` },
      body: new URLSearchParams({ grant_type: "client_credentials", audience: "auth" }),
    });
    await badSecret.body?.cancel();
    assert.equal(badSecret.status, 401);
  });

  const pages: Record<string, string> = {};
  await t.step(
    "every service's /metrics passes promtool check metrics and has the families of its layers",
    async () => {
      // The relays and the consumers finish the saga's last messages (a receipt, its notice) shortly after CONFIRMED:
      // then no outbox holds a row and no consumer lags, on Kafka (per partition) or JetStream (pending).
      const metricsOf = async (name: string) =>
        await (await fetch(`${cluster.procs.find((p) => p.name === name)!.url}/metrics`)).text();
      await waitUntil(
        async () => {
          for (const name of ["orders", "inventory", "payments", "notifications"]) {
            const text = await metricsOf(name);
            if ((sample(text, "outbox_backlog") ?? 0) !== 0) return false;
            if (sample(text, "messaging_consumer_lag_messages") !== 0) return false;
          }
          return true;
        },
        15_000,
        "every outbox drained and every consumer caught up",
        100,
      );
      for (const p of cluster.procs) {
        const res = await fetch(`${p.url}/metrics`, { signal: AbortSignal.timeout(5_000) });
        assert.equal(res.status, 200);
        pages[p.name] = await res.text();
      }
      for (const name of SERVICES) {
        const text = pages[name];
        const { code, output } = await within(promtool(["check", "metrics"], text), 20_000, `promtool on ${name}`);
        assert.equal(output, "", `promtool check metrics on ${name}`);
        assert.equal(code, 0, `promtool check metrics on ${name}`);
        const families = new Set(text.split("\n").filter((l) => l.startsWith("# TYPE ")).map((l) => l.split(" ")[2]));
        const missing = [...COMMON, ...OWN[name]].filter((f) => !families.has(f));
        assert.deepEqual(missing, [], `${name} lacks metric families`);
      }
      const orders = pages.orders;
      assert.equal(sample(orders, "orders_sagas_started_total"), 1);
      assert.equal(sample(orders, "orders_sagas_completed_total", { outcome: "confirmed" }), 1);
      assert.ok((sample(orders, "orders_saga_step_duration_seconds_count", { step: "RESERVING" }) ?? 0) >= 1);
      assert.ok((sample(orders, "messaging_published_total", { outcome: "ok" }) ?? 0) >= 1, "orders published nothing");
      assert.ok((sample(orders, "messaging_consumed_total", { outcome: "ack" }) ?? 0) >= 2, "orders consumed no reply");
      assert.ok((sample(orders, "db_client_operation_duration_seconds_count", { operation: "insert" }) ?? 0) >= 1);
      assert.ok((sample(orders, "grpc_server_handled_total", { code: "OK" }) ?? 0) >= 1);
      assert.ok(sample(orders, "messaging_consumer_lag_messages") !== undefined, "no Kafka consumer lag");
      assert.ok(
        sample(pages.notifications, "messaging_consumer_lag_messages", { partition: "" }) !== undefined,
        "no JetStream pending count",
      );
    },
  );

  await t.step("a Prometheus scraping the system's real ports sees every target up", async () => {
    await using prometheus = await startPrometheus(cluster.procs.map((p) => new URL(p.url).host));
    let last: unknown;
    await waitUntil(
      async () => {
        const targets = await prometheus.targets();
        last = targets;
        return targets.length === SERVICES.length && targets.every((target) => target.health === "up");
      },
      20_000,
      "all six targets up in Prometheus",
      250,
    ).catch((err) => {
      throw new Error(`${err.message}: ${JSON.stringify(last)}`, { cause: err });
    });
    const up = await prometheus.query("up == 1");
    assert.deepEqual(up.map((s) => s.metric.instance).sort(), cluster.procs.map((p) => new URL(p.url).host).sort());
    const started = await prometheus.query("sum(orders_sagas_started_total)");
    assert.equal(started[0]?.value[1], "1", "Prometheus did not scrape the saga counter");
  });

  await t.step(
    "no log line of any service holds a secret, a password or a token, and lines in a span name it",
    async () => {
      const results = await cluster.stop();
      assert.deepEqual(results.filter((r) => r.code !== 0).map((r) => `${r.name} exited ${r.code}`), []);
      const quiet: string[] = [];
      let inSpan = 0;
      const leaks: string[] = [];
      for (const r of results) {
        const text = await Deno.readTextFile(r.log);
        if ((r.name === "gateway" || r.name === "auth") && !text.includes('"msg":"request"')) quiet.push(r.name);
        for (const line of text.split("\n")) {
          if (line === "") continue;
          for (const [what, value] of Object.entries(searched)) {
            if (line.includes(value)) leaks.push(`${r.name} logged ${what}: ${line.slice(0, 300)}`);
          }
          if (/"traceId":"[0-9a-f]{32}","spanId":"[0-9a-f]{16}"/.test(line)) inSpan++;
        }
      }
      assert.deepEqual(leaks, []);
      assert.deepEqual(quiet, [], "the services the test called logged no access line: the search proves little");
      assert.ok(inSpan > 0, "no log line carries a trace id and span id");
    },
  );
});
