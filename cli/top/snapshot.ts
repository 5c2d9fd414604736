import type { StuckOrder } from "../../services/orders/admin.ts";
import { DLQ_SERVICES, lettersOf } from "../commands/dlq.ts";
import { type Readiness, readiness } from "../commands/health.ts";
import { type Cli, reason, SERVICE_NAMES, type ServiceName } from "../context.ts";
import { parsePrometheus, type Sample, sum } from "./prometheus.ts";

/** gRPC status names that count as server errors (the caller did nothing wrong). */
const GRPC_ERRORS = new Set(["UNKNOWN", "INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "DATA_LOSS", "UNIMPLEMENTED"]);

/** What `trellis top` knows of one service at one refresh. Absent numbers are shown as `–`. */
export interface ServiceStats {
  service: ServiceName;
  health: Readiness;
  samples: Sample[];
  scrapeError?: string;
  /** Requests served so far (HTTP and gRPC), from `/metrics`. */
  requests?: number;
  /** Of those, server errors (HTTP 5xx, gRPC INTERNAL/UNAVAILABLE/...). */
  errors?: number;
  /** Requests and errors a second since the previous refresh. */
  requestRate?: number;
  errorRate?: number;
  /** Messages its consumers have yet to read, when a `*consumer_lag*` metric exists. */
  lag?: number;
  /** Dead letters, from a `*dead_letter*` metric or else its `/admin/dlq` (when served). */
  deadLetters?: number;
  /** Outbox rows waiting for the relay (`outbox_backlog`). */
  outboxBacklog?: number;
  /** Orders PENDING past their deadline (orders only, from `/admin/orders/stuck`). */
  stuck?: StuckOrder[];
  stuckError?: string;
}

/** One refresh of every service. */
export interface Snapshot {
  at: number;
  services: ServiceStats[];
}

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(2_000) });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`/metrics answered ${res.status}`);
  }
  return parsePrometheus(await res.text());
}

/** Reads every service's readiness and metrics (and the orders' stuck sagas), with rates against `previous`. */
export async function collect(cli: Cli, previous?: Snapshot, now: () => number = Date.now): Promise<Snapshot> {
  const urls = cli.urls();
  const at = now();
  const [health, scraped, stuck, letters] = await Promise.all([
    readiness(urls, 2_000),
    Promise.all(SERVICE_NAMES.map((s) => scrape(urls[s]).then((samples) => ({ samples }), (err) => ({ err })))),
    (cli.call("orders", "/admin/orders/stuck?limit=100") as Promise<{ orders: StuckOrder[] }>).then(
      (r) => ({ orders: r.orders }),
      (err) => ({ err }),
    ),
    Promise.all(
      DLQ_SERVICES.map((s) =>
        cli.call(s, "/admin/dlq?limit=1000").then((body) => lettersOf(body).length, () => undefined)
      ),
    ),
  ]);
  const services = SERVICE_NAMES.map((service, i): ServiceStats => {
    const got = scraped[i];
    const samples = "samples" in got ? got.samples : [];
    const http = sum(samples, "http_requests_total");
    const grpc = sum(samples, "grpc_server_handled_total");
    const requests = http === undefined && grpc === undefined ? undefined : (http ?? 0) + (grpc ?? 0);
    const errors = requests === undefined
      ? undefined
      : (sum(samples, "http_requests_total", (l) => Number(l.status) >= 500) ?? 0) +
        (sum(samples, "grpc_server_handled_total", (l) => GRPC_ERRORS.has(l.code)) ?? 0);
    const before = previous?.services.find((p) => p.service === service);
    const seconds = previous ? (at - previous.at) / 1000 : 0;
    const rate = (now: number | undefined, then: number | undefined) =>
      now !== undefined && then !== undefined && seconds > 0 ? Math.max(0, now - then) / seconds : undefined;
    const dlqIndex = DLQ_SERVICES.indexOf(service);
    const stats: ServiceStats = {
      service,
      health: health[i],
      samples,
      scrapeError: "err" in got ? reason(got.err) : undefined,
      requests,
      errors,
      requestRate: rate(requests, before?.requests),
      errorRate: rate(errors, before?.errors),
      lag: sum(samples, /consumer_lag/),
      deadLetters: sum(samples, /dead_letter/) ?? (dlqIndex >= 0 ? letters[dlqIndex] : undefined),
      outboxBacklog: sum(samples, "outbox_backlog"),
    };
    if (service === "orders") {
      if ("orders" in stuck) stats.stuck = stuck.orders;
      else stats.stuckError = reason(stuck.err);
    }
    return stats;
  });
  return { at, services };
}
