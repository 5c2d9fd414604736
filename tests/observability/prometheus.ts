import { freePorts, waitUntil, within } from "@trellis/platform/testing";

const alerts = new URL("../../deploy/alerts.yml", import.meta.url).pathname;

/** One target as Prometheus' `/api/v1/targets` reports it. */
export interface Target {
  scrapeUrl: string;
  health: "up" | "down" | "unknown";
  lastError: string;
}

/**
 * A Prometheus of its own (a free port, a temporary data directory) scraping `targets` (`host:port`) every second
 * with deploy/alerts.yml loaded. Disposing stops it (SIGTERM, then SIGKILL after 10 s) and removes its directory.
 */
export async function startPrometheus(targets: string[]) {
  const dir = await Deno.makeTempDir({ prefix: "trellis-prometheus-" });
  const [port] = freePorts(1);
  const config = `${dir}/prometheus.yml`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: [alerts],
      scrape_configs: [{ job_name: "trellis", static_configs: [{ targets }] }],
    }),
  );
  const child = new Deno.Command("prometheus", {
    args: [
      `--config.file=${config}`,
      `--storage.tsdb.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = child.stderr.pipeTo(
    await Deno.open(`${dir}/prometheus.log`, { create: true, write: true }).then((f) => f.writable),
  );
  const url = `http://127.0.0.1:${port}`;
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(2_000) });
    const body = await res.json();
    if (body.status !== "success") throw new Error(`Prometheus ${path}: ${JSON.stringify(body)}`);
    return body.data as T;
  };
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    try {
      await within(Promise.all([child.status, log]), 15_000, "prometheus to exit");
    } finally {
      clearTimeout(killer);
      await Deno.remove(dir, { recursive: true });
    }
  };
  try {
    await waitUntil(
      async () => {
        try {
          return (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) }).then(async (r) => {
            await r.body?.cancel();
            return r.ok;
          }));
        } catch {
          return false;
        }
      },
      20_000,
      "prometheus to be ready",
      100,
    );
  } catch (err) {
    const tail = await Deno.readTextFile(`${dir}/prometheus.log`).catch(() => "");
    await stop();
    throw new Error(`${(err as Error).message}; log:\n${tail.slice(-2_000)}`, { cause: err });
  }
  return {
    url,
    /** The active scrape targets and their health. */
    targets: async () => (await api<{ activeTargets: Target[] }>("/api/v1/targets")).activeTargets,
    /** An instant query's result vector. */
    query: async (promql: string) =>
      (await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
        `/api/v1/query?query=${encodeURIComponent(promql)}`,
      )).result,
    [Symbol.asyncDispose]: stop,
  };
}
