import { type Command, intFlag } from "../command.ts";
import { type Cli, reason, SERVICE_NAMES, type ServiceName } from "../context.ts";
import { table } from "../table.ts";

/** One service's answer to `/readyz`. */
export interface Readiness {
  service: ServiceName;
  url: string;
  ready: boolean;
  /** HTTP status, or 0 when the service did not answer. */
  status: number;
  ms: number;
  /** The checks as `/readyz` reported them. */
  checks: Record<string, { ok: boolean; ms?: number; error?: string }>;
  /** Why the service did not answer, when it did not. */
  error?: string;
}

/** Asks every service's `/readyz` at once, each bounded by `timeoutMs`. */
export async function readiness(urls: Record<ServiceName, string>, timeoutMs = 5_000): Promise<Readiness[]> {
  return await Promise.all(SERVICE_NAMES.map(async (service): Promise<Readiness> => {
    const url = urls[service];
    const started = performance.now();
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
      const body = await res.json().catch(() => ({}));
      return {
        service,
        url,
        ready: res.status === 200 && body.status === "ready",
        status: res.status,
        ms: Math.round(performance.now() - started),
        checks: body.checks ?? {},
      };
    } catch (err) {
      return {
        service,
        url,
        ready: false,
        status: 0,
        ms: Math.round(performance.now() - started),
        checks: {},
        error: reason(err),
      };
    }
  }));
}

/** The failed checks of a service as one cell (`database: connection refused; jwks: ...`). */
export function failedChecks(r: Readiness): string {
  if (r.error) return r.error;
  const failed = Object.entries(r.checks).filter(([, c]) => !c.ok).map(([n, c]) => `${n}: ${c.error ?? "failed"}`);
  return failed.join("; ") || (r.ready ? Object.keys(r.checks).join(", ") : `HTTP ${r.status}`);
}

export const health: Command = {
  path: ["health"],
  summary: "Asks every service's /readyz; exits 1 when any is not ready.",
  flags: {
    timeout: { type: "string", value: "ms", description: "how long to wait for each service (default 5000)" },
  },
  async run(cli: Cli, input) {
    const results = await readiness(cli.urls(), intFlag(input, "timeout", 1, 600_000, 5_000));
    if (cli.json) {
      cli.printJson({ ready: results.every((r) => r.ready), services: results });
    } else {
      cli.print(table(
        ["SERVICE", "STATUS", "MS", "URL", "CHECKS"],
        results.map((r) => [r.service, r.ready ? "ready" : "NOT READY", r.ms, r.url, failedChecks(r)]),
      ));
    }
    return results.every((r) => r.ready) ? 0 : 1;
  },
};
