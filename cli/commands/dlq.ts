import { type Command, type Input, intFlag, numberFlag, stringFlag, UsageError } from "../command.ts";
import { type Cli, RemoteError, type ServiceName } from "../context.ts";
import { Progress } from "../progress.ts";
import { describe, table } from "../table.ts";

/** The services whose consumers dead-letter messages, each serving its own letters under `/admin/dlq`. */
export const DLQ_SERVICES: readonly ServiceName[] = ["orders", "inventory", "payments", "notifications"];

/** How many ids one redrive call carries, so progress shows and one call stays short. */
const BATCH = 10;

const SERVICE_FLAG = {
  service: {
    type: "string",
    value: "name",
    description: `only this service's dead letters (${DLQ_SERVICES.join(", ")}; default all that serve them)`,
  },
} as const;
const FILTER_FLAGS = {
  source: { type: "string", value: "topic", description: "only letters that failed on this source topic (exactly)" },
  error: { type: "string", value: "text", description: "only letters whose error contains this text" },
  "failed-after": { type: "string", value: "time", description: "only letters that failed at or after this ISO time" },
  "failed-before": { type: "string", value: "time", description: "only letters that failed before this ISO time" },
} as const;

/** A dead letter's id as the services give it: `<dlq topic>@<position>`. */
const ID = /^[\w.:-]{1,200}@[\w.:-]{1,100}$/;

function servicesOf(input: Input): readonly ServiceName[] {
  const s = stringFlag(input, "service");
  if (s === undefined) return DLQ_SERVICES;
  if (!(DLQ_SERVICES as readonly string[]).includes(s)) {
    throw new UsageError(`--service must be one of ${DLQ_SERVICES.join(", ")}, got ${s}`);
  }
  return [s as ServiceName];
}

/** A filter as the endpoints take it (`source`, `error`, `failedAfter`, `failedBefore`), or `undefined` for none. */
function filterOf(input: Input): Record<string, string> | undefined {
  const filter: Record<string, string> = {};
  for (
    const [flag, field] of [["source", "source"], ["error", "error"], ["failed-after", "failedAfter"], [
      "failed-before",
      "failedBefore",
    ]]
  ) {
    const v = stringFlag(input, flag);
    if (v === undefined) continue;
    if (field.startsWith("failed") && Number.isNaN(Date.parse(v))) {
      throw new UsageError(`--${flag} must be an ISO 8601 time, got ${JSON.stringify(v)}`);
    }
    filter[field] = v;
  }
  return Object.keys(filter).length === 0 ? undefined : filter;
}

/**
 * A service without the DLQ routes (404), that does not let the ops client at them (403), or whose bus retains no
 * messages (501, NATS Core) is passed over.
 */
function notServed(err: unknown): boolean {
  return err instanceof RemoteError && (err.status === 404 || err.status === 403 || err.status === 501);
}

/** The letters in a list answer: the answer itself when it is an array, else its first array field. */
export function lettersOf(body: unknown): Record<string, unknown>[] {
  if (Array.isArray(body)) return body;
  if (body && typeof body === "object") {
    const b = body as Record<string, unknown>;
    const field = ["letters", "deadLetters", "items"].find((k) => Array.isArray(b[k])) ??
      Object.keys(b).find((k) => Array.isArray(b[k]));
    if (field) return b[field] as Record<string, unknown>[];
  }
  return [];
}

/** Calls `path` on each service, skipping those that do not serve it; throws when none does. */
async function onEach<T>(
  services: readonly ServiceName[],
  call: (service: ServiceName) => Promise<T>,
): Promise<{ service: ServiceName; result: T }[]> {
  const out: { service: ServiceName; result: T }[] = [];
  let lastSkip: unknown;
  for (const service of services) {
    try {
      out.push({ service, result: await call(service) });
    } catch (err) {
      if (!notServed(err)) throw err;
      lastSkip = err;
    }
  }
  if (out.length === 0) throw new Error(`no service serves dead letters: ${(lastSkip as Error).message}`);
  return out;
}

/** The list table's columns: header and how a cell is read from a letter summary. */
const LIST_COLUMNS: [string, (l: Record<string, unknown>) => unknown][] = [
  ["SERVICE", (l) => l.service],
  ["ID", (l) => l.id],
  ["SOURCE", (l) => l.sourceTopic],
  ["ERROR", (l) => short(l.error)],
  ["ATTEMPTS", (l) => l.attempts],
  ["FAILED AT", (l) => l.failedAt ?? (typeof l.timestamp === "number" ? new Date(l.timestamp).toISOString() : "")],
  ["REDRIVES", (l) => l.redrives],
];

export const dlqList: Command = {
  path: ["dlq", "list"],
  summary: "Lists dead letters of every service (or --service), oldest first per service.",
  flags: {
    ...SERVICE_FLAG,
    ...FILTER_FLAGS,
    limit: { type: "string", value: "n", description: "at most this many per service, 1 to 1000 (default 100)" },
  },
  async run(cli, input) {
    const query = new URLSearchParams(filterOf(input));
    query.set("limit", String(intFlag(input, "limit", 1, 1000, 100)));
    const answers = await onEach(servicesOf(input), (s) => cli.call(s, `/admin/dlq?${query}`));
    const letters: Record<string, unknown>[] = answers.flatMap(({ service, result }) =>
      lettersOf(result).map((l) => ({ service, ...l }))
    );
    if (cli.json) {
      cli.printJson({ letters });
      return 0;
    }
    if (letters.length === 0) {
      cli.print("no dead letters");
      return 0;
    }
    cli.print(table(LIST_COLUMNS.map(([h]) => h), letters.map((l) => LIST_COLUMNS.map(([, get]) => get(l)))));
    return 0;
  },
};

function short(v: unknown): unknown {
  if (typeof v === "string" && v.length > 60) return `${v.slice(0, 59)}…`;
  return v;
}

/** A letter for a human: its fields, its headers, then its payload (JSON pretty-printed when it is JSON). */
function showLetter(service: string, letter: Record<string, unknown>): string {
  const { headers, payload, payloadEncoding, ...fields } = letter;
  const lines = [describe({ service, ...fields })];
  if (headers && typeof headers === "object" && Object.keys(headers).length > 0) {
    lines.push("headers:", describe(headers, "  "));
  }
  let body = String(payload ?? "");
  if (payloadEncoding === "utf-8") {
    try {
      body = JSON.stringify(JSON.parse(body), null, 2);
    } catch { /* not JSON: shown as the text it is */ }
  }
  lines.push(`payload (${payloadEncoding ?? "unknown encoding"}):`, body.split("\n").map((l) => `  ${l}`).join("\n"));
  return lines.join("\n");
}

export const dlqShow: Command = {
  path: ["dlq", "show"],
  args: ["<id>"],
  summary: "Shows one dead letter: payload, headers, error, attempts, source.",
  flags: SERVICE_FLAG,
  async run(cli, input) {
    const id = input.positionals[0];
    if (!ID.test(id)) throw new UsageError(`${JSON.stringify(id)} is not a dead-letter id (<topic>@<position>)`);
    for (const service of servicesOf(input)) {
      try {
        const letter = await cli.call(service, `/admin/dlq/${encodeURIComponent(id)}`);
        if (cli.json) cli.printJson({ service, letter });
        else cli.print(showLetter(service, letter as Record<string, unknown>));
        return 0;
      } catch (err) {
        if (!notServed(err)) throw err;
      }
    }
    throw new Error(`no dead letter ${id}`);
  },
};

export const dlqRedrive: Command = {
  path: ["dlq", "redrive"],
  args: ["[id...]"],
  summary: "Publishes dead letters again to their source: by id, by filter flags, or --all; at a bounded rate.",
  flags: {
    ...SERVICE_FLAG,
    ...FILTER_FLAGS,
    all: { type: "boolean", description: "every dead letter" },
    rate: {
      type: "string",
      value: "n",
      description: "at most n letters a second, up to 1000 (default the service's, 10)",
    },
  },
  async run(cli, input) {
    const ids = input.positionals;
    const filter = filterOf(input);
    const all = input.values.all === true;
    exactlyOneSelection(ids, filter, all);
    const rate = input.values.rate === undefined ? undefined : numberFlag(input, "rate", 0.1, 1000, 0);
    const services = servicesOf(input);
    const base = rate === undefined ? {} : { ratePerSec: rate };
    const perService = new Map<string, number>();
    const add = (s: string, n: number) => perService.set(s, (perService.get(s) ?? 0) + n);
    const batches = ids.length > 0 ? chunks(ids, BATCH) : [undefined];
    const progress = new Progress("redrive", ids.length > 0 ? ids.length : services.length);
    try {
      for (const batch of batches) {
        // --all sends neither ids nor a filter: the endpoint then redrives every letter.
        const body = batch ? { ...base, ids: batch } : filter ? { ...base, filter } : base;
        const answers = await onEach(services, async (s) => {
          const r = await cli.call(s, "/admin/dlq/redrive", { method: "POST", body }) as { redriven?: number };
          if (!batch) progress.tick(1, s);
          return r;
        });
        for (const { service, result } of answers) add(service, Number(result.redriven ?? 0));
        if (batch) progress.tick(batch.length);
      }
    } finally {
      progress.done();
    }
    return report(cli, "redriven", perService);
  },
};

export const dlqPurge: Command = {
  path: ["dlq", "purge"],
  args: ["[id...]"],
  summary: "Deletes dead letters for good: by id, by filter flags, or --all (which needs --yes).",
  flags: {
    ...SERVICE_FLAG,
    ...FILTER_FLAGS,
    all: { type: "boolean", description: "every dead letter" },
    yes: { type: "boolean", description: "confirm --all" },
  },
  async run(cli, input) {
    const ids = input.positionals;
    const filter = filterOf(input);
    const all = input.values.all === true;
    exactlyOneSelection(ids, filter, all);
    if (all && input.values.yes !== true) throw new UsageError("purge --all deletes every dead letter: add --yes");
    const body = ids.length > 0 ? { ids } : filter ? { filter } : { all: true };
    const perService = new Map<string, number>();
    const answers = await onEach(
      servicesOf(input),
      (s) => cli.call(s, "/admin/dlq/purge", { method: "POST", body }) as Promise<{ purged?: number }>,
    );
    for (const { service, result } of answers) perService.set(service, Number(result.purged ?? 0));
    return report(cli, "purged", perService);
  },
};

function exactlyOneSelection(ids: string[], filter: object | undefined, all: boolean): void {
  const chosen = [ids.length > 0, filter !== undefined, all].filter(Boolean).length;
  if (chosen !== 1) {
    throw new UsageError(
      "name dead-letter ids, or filter flags (--source, --error, --failed-after, --failed-before), or --all (exactly one of them)",
    );
  }
  for (const id of ids) {
    if (!ID.test(id)) throw new UsageError(`${JSON.stringify(id)} is not a dead-letter id (<topic>@<position>)`);
  }
}

function report(cli: Cli, verb: "redriven" | "purged", perService: Map<string, number>): number {
  const total = [...perService.values()].reduce((a, b) => a + b, 0);
  if (cli.json) cli.printJson({ [verb]: total, services: Object.fromEntries(perService) });
  else {
    const parts = [...perService].filter(([, n]) => n > 0).map(([s, n]) => `${s} ${n}`);
    cli.print(`${verb} ${total}${parts.length > 0 ? ` (${parts.join(", ")})` : ""}`);
  }
  return 0;
}

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}
