import assert from "node:assert/strict";
import { parsePrometheus, sum } from "../../cli/top/prometheus.ts";

const TEXT = `# HELP http_requests_total HTTP requests by method, route template and status.
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/readyz",status="200",service="orders"} 12
http_requests_total{method="POST",route="/v1/orders",status="503",service="gateway"} 2
http_requests_total{method="GET",route="/a \\"b\\"",status="500"} 1 1700000000000
outbox_backlog{service="orders"} 4
process_start_time_seconds 1.7e9
weird line here
histogram_bucket{le="+Inf"} +Inf
`;

Deno.test("parsePrometheus() reads samples with labels, escapes, exponents and timestamps, and skips comments and junk", () => {
  const samples = parsePrometheus(TEXT);
  assert.equal(samples.length, 6);
  assert.deepEqual(samples[0], {
    name: "http_requests_total",
    labels: { method: "GET", route: "/readyz", status: "200", service: "orders" },
    value: 12,
  });
  assert.equal(samples[2].labels.route, '/a "b"');
  assert.equal(samples[4].value, 1.7e9);
  assert.equal(samples[5].value, Infinity);
});

Deno.test("sum() adds the matching samples and is undefined when none match", () => {
  const samples = parsePrometheus(TEXT);
  assert.equal(sum(samples, "http_requests_total"), 15);
  assert.equal(sum(samples, "http_requests_total", (l) => Number(l.status) >= 500), 3);
  assert.equal(sum(samples, /backlog$/), 4);
  assert.equal(sum(samples, "consumer_lag"), undefined);
});
