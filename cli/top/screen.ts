import { failedChecks } from "../commands/health.ts";
import { table } from "../table.ts";
import type { ServiceStats, Snapshot } from "./snapshot.ts";

/** What `trellis top` shows: the latest snapshot, the selected row, and whether that service is drilled into. */
export interface View {
  snapshot?: Snapshot;
  selected: number;
  detail: boolean;
  intervalSec: number;
  /** Why the last refresh failed, if it did. */
  error?: string;
}

const INVERSE = "\x1b[7m";
const RESET = "\x1b[0m";
const GREEN = "\x1b[32m";
const RED = "\x1b[31m";
const BOLD = "\x1b[1m";

const num = (v: number | undefined, digits = 0) => (v === undefined ? "–" : v.toFixed(digits));

/** Renders `view` as at most `rows` lines of at most `cols` visible characters (ANSI styling aside). */
export function render(view: View, cols: number, rows: number): string[] {
  const lines = view.detail && view.snapshot ? detail(view, view.snapshot.services[view.selected]) : overview(view);
  return lines.slice(0, rows).map((l) => clip(l, cols));
}

function header(left: string, right: string): string {
  return `${BOLD}${left}${RESET}   ${right}`;
}

function overview(view: View): string[] {
  const at = view.snapshot ? new Date(view.snapshot.at).toISOString().slice(11, 19) : "…";
  const out = [
    header(
      `trellis top — refreshed ${at} UTC, every ${view.intervalSec} s`,
      "↑/↓ j/k or 1-6 select · Enter details · q quit",
    ),
    "",
  ];
  if (!view.snapshot) return [...out, "collecting…"];
  const rows = view.snapshot.services.map((s, i) => [
    String(i + 1),
    s.service,
    s.health.ready ? "ready" : "NOT READY",
    num(s.requestRate, 1),
    num(s.errorRate, 2),
    num(s.lag),
    num(s.deadLetters),
    num(s.outboxBacklog),
    s.service === "orders" ? (s.stuck ? String(s.stuck.length) : "?") : "–",
  ]);
  const lines = table(["#", "SERVICE", "HEALTH", "REQ/S", "ERR/S", "LAG", "DEAD", "OUTBOX", "STUCK"], rows)
    .split("\n");
  out.push(`  ${lines[0]}`);
  lines.slice(1).forEach((line, i) => {
    const styled = line.replace(/NOT READY|ready/, (m) => `${m === "ready" ? GREEN : RED}${m}${RESET}`);
    out.push(i === view.selected ? `${INVERSE}> ${line}${RESET}` : `  ${styled}`);
  });
  const down = view.snapshot.services.filter((s) => !s.health.ready);
  out.push("");
  out.push(
    down.length === 0
      ? "all services ready"
      : `${down.length} not ready: ${down.map((s) => `${s.service} (${failedChecks(s.health)})`).join("; ")}`,
  );
  if (view.error) out.push(`${RED}refresh failed: ${view.error}${RESET}`);
  return out;
}

function detail(view: View, s: ServiceStats): string[] {
  const out = [
    header(`${s.service} — ${s.health.url} — ${s.health.ready ? "ready" : "NOT READY"}`, "Esc/Backspace back · q quit"),
    "",
    "Checks",
  ];
  const checks = Object.entries(s.health.checks);
  if (s.health.error) out.push(`  unreachable: ${s.health.error}`);
  else if (checks.length === 0) out.push(`  (none reported; HTTP ${s.health.status})`);
  else {
    out.push(
      ...table(
        ["CHECK", "OK", "MS", "ERROR"],
        checks.map(([n, c]) => [n, c.ok ? "ok" : "FAILED", c.ms ?? "–", c.error ?? ""]),
      ).split("\n").map((l) => `  ${l}`),
    );
  }
  out.push("", "Traffic");
  out.push(
    `  requests ${num(s.requests)} (${num(s.requestRate, 1)}/s), server errors ${num(s.errors)} (${
      num(s.errorRate, 2)
    }/s)${s.scrapeError ? `; /metrics: ${s.scrapeError}` : ""}`,
  );
  const routes = new Map<string, number>();
  for (const m of s.samples) {
    if (m.name === "http_requests_total") {
      const k = `HTTP ${m.labels.method} ${m.labels.route} ${m.labels.status}`;
      routes.set(k, (routes.get(k) ?? 0) + m.value);
    } else if (m.name === "grpc_server_handled_total") {
      const k = `gRPC ${m.labels.method} ${m.labels.code}`;
      routes.set(k, (routes.get(k) ?? 0) + m.value);
    }
  }
  const busiest = [...routes].sort((a, b) => b[1] - a[1]).slice(0, 6);
  if (busiest.length > 0) out.push(...table(["ROUTE", "REQUESTS"], busiest).split("\n").map((l) => `  ${l}`));
  out.push("", "Messaging");
  out.push(
    `  consumer lag ${num(s.lag)} · dead letters ${num(s.deadLetters)} · outbox backlog ${num(s.outboxBacklog)}`,
  );
  const breakers = s.samples.filter((m) => m.name === "circuit_breaker_state");
  if (breakers.length > 0) {
    const state = ["closed", "open", "half-open"];
    out.push(
      `  circuit breakers: ${
        breakers.map((b) => `${b.labels.target ?? b.labels.name ?? "?"} ${state[b.value] ?? b.value}`).join(", ")
      }`,
    );
  }
  if (s.service === "orders") {
    out.push("", "Stuck sagas (PENDING past their deadline)");
    if (s.stuckError) out.push(`  unknown: ${s.stuckError}`);
    else if (!s.stuck || s.stuck.length === 0) out.push("  none");
    else {
      out.push(
        ...table(
          ["ORDER", "STEP", "OVERDUE S"],
          s.stuck.slice(0, 10).map((o) => [o.id, o.step, Math.round(o.overdueMs / 1000)]),
        ).split("\n").map((l) => `  ${l}`),
      );
    }
  }
  if (view.error) out.push("", `${RED}refresh failed: ${view.error}${RESET}`);
  return out;
}

/** `line` cut to `cols` visible characters, escape sequences kept (and styling reset when cut). */
export function clip(line: string, cols: number): string {
  let visible = 0;
  let out = "";
  for (let i = 0; i < line.length; i++) {
    if (line[i] === "\x1b") {
      // deno-lint-ignore no-control-regex -- an ANSI escape sequence starts with the ESC control character
      const m = /^\x1b\[[0-9;]*[A-Za-z]/.exec(line.slice(i));
      if (m) {
        out += m[0];
        i += m[0].length - 1;
        continue;
      }
    }
    if (visible === cols) return `${out}${RESET}`;
    out += line[i];
    visible++;
  }
  return out;
}

/** `line` without its ANSI styling, for output that is not a terminal. */
export function plain(line: string): string {
  // deno-lint-ignore no-control-regex -- an ANSI escape sequence starts with the ESC control character
  return line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
}
