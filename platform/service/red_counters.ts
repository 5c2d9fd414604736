import type { Registry } from "prom-client";

/** Methods labelled as themselves; any other is "OTHER", so a client cannot mint label sets at will. */
const KNOWN_METHODS = new Map(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].map((m, i) => [m, i]));
const OTHER = KNOWN_METHODS.size;
const METHOD_LABELS = [...KNOWN_METHODS.keys(), "OTHER"];
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One `http_requests_total` series. */
interface CountSeries {
  labels: { method: string; route: string; status: string };
  value: number;
}

/** One `http_request_duration_seconds` series: counts per bucket (not cumulative; the last is above every bound). */
interface DurationSeries {
  labels: { method: string; route: string };
  buckets: Float64Array;
  sum: number;
  count: number;
}

/** The series of one route template, found by method index (and status) without building a key string. */
interface RouteSeries {
  durations: (DurationSeries | undefined)[];
  counts: Map<number, CountSeries>;
}

/**
 * The RED metrics of a service's HTTP requests — `http_requests_total{method,route,status}` and
 * `http_request_duration_seconds{method,route}` — counted into plain numbers and typed arrays as requests end, and
 * handed to prom-client only when `/metrics` is scraped. prom-client validates and hashes the label set on every
 * `inc()`/`observe()`, even through a cached child: a few microseconds per request that a scrape every 15 s can pay
 * instead. The exposition is the one prom-client's own `Counter` and `Histogram` give (names, help, label order,
 * buckets), so dashboards and alerts keep working. Methods outside the standard ones are labelled `OTHER`.
 */
export class RedCounters {
  readonly #routes = new Map<string, RouteSeries>();
  readonly #counts: CountSeries[] = [];
  readonly #durations: DurationSeries[] = [];

  /** Registers both metrics on `registry` (a registry holds one of each name). */
  constructor(registry: Registry) {
    const counts = this.#counts;
    const durations = this.#durations;
    // As prom-client's reset(): every series goes, and comes back with its next request.
    const reset = () => {
      this.#routes.clear();
      counts.length = 0;
      durations.length = 0;
    };
    register(registry, {
      name: "http_requests_total",
      help: "HTTP requests by method, route template and status.",
      type: "counter",
      aggregator: "sum",
      values: () => counts.map((s) => ({ labels: s.labels, value: s.value })),
      reset,
    });
    register(registry, {
      name: "http_request_duration_seconds",
      help: "HTTP request duration by method and route template.",
      type: "histogram",
      aggregator: "sum",
      values: () => durations.flatMap(histogramValues),
      reset,
    });
  }

  /** Counts one request: `route` is the matched template (or `"unmatched"`), `seconds` its duration. */
  record(method: string, route: string, status: number, seconds: number): void {
    const m = KNOWN_METHODS.get(method) ?? OTHER;
    let series = this.#routes.get(route);
    if (series === undefined) {
      series = { durations: [], counts: new Map() };
      this.#routes.set(route, series);
    }
    const key = m * 1000 + status;
    let count = series.counts.get(key);
    if (count === undefined) {
      count = { labels: { method: METHOD_LABELS[m], route, status: String(status) }, value: 0 };
      series.counts.set(key, count);
      this.#counts.push(count);
    }
    count.value++;
    let duration = series.durations[m];
    if (duration === undefined) {
      duration = {
        labels: { method: METHOD_LABELS[m], route },
        buckets: new Float64Array(BUCKETS.length + 1),
        sum: 0,
        count: 0,
      };
      series.durations[m] = duration;
      this.#durations.push(duration);
    }
    let b = 0;
    while (b < BUCKETS.length && seconds > BUCKETS[b]) b++;
    duration.buckets[b]++;
    duration.sum += seconds;
    duration.count++;
  }
}

/** A series' values as prom-client's `Histogram` exports them: cumulative buckets, `+Inf`, sum, count. */
function histogramValues(s: DurationSeries): PromValue[] {
  const out: PromValue[] = [];
  let acc = 0;
  for (let i = 0; i < BUCKETS.length; i++) {
    acc += s.buckets[i];
    out.push({
      labels: { le: BUCKETS[i] },
      sharedLabels: s.labels,
      value: acc,
      metricName: "http_request_duration_seconds_bucket",
    });
  }
  out.push(
    {
      labels: { le: "+Inf" },
      sharedLabels: s.labels,
      value: s.count,
      metricName: "http_request_duration_seconds_bucket",
    },
    { labels: {}, sharedLabels: s.labels, value: s.sum, metricName: "http_request_duration_seconds_sum" },
    { labels: {}, sharedLabels: s.labels, value: s.count, metricName: "http_request_duration_seconds_count" },
  );
  return out;
}

interface PromValue {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName?: string;
}

/**
 * Registers a metric whose values are produced at scrape time. prom-client's registry asks each metric for
 * `getForPromString()` (text exposition) or `get()` (JSON, and `getSingleMetric()` readers), which is all a metric
 * object needs; the values are built from our counters then, never per request.
 */
function register(
  registry: Registry,
  spec: {
    name: string;
    help: string;
    type: "counter" | "histogram";
    aggregator: "sum";
    values: () => PromValue[];
    reset: () => void;
  },
): void {
  const { name, help, type, aggregator, values, reset } = spec;
  const metric = {
    name,
    help,
    type,
    aggregator,
    getForPromString: () => Promise.resolve({ name, help, type, aggregator, values: values() }),
    // prom-client's get() merges shared labels into labels for JSON readers.
    get: () =>
      Promise.resolve({
        name,
        help,
        type,
        aggregator,
        values: values().map(({ labels, sharedLabels, ...rest }) => ({
          ...rest,
          labels: { ...labels, ...sharedLabels },
        })),
      }),
    reset,
  };
  // prom-client types registerMetric() for its own classes; its registry reads only the members above.
  registry.registerMetric(metric as unknown as Parameters<Registry["registerMetric"]>[0]);
}
