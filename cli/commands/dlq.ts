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
  source: { type: "string", value: "topic", description: "only letters from this source (topic or subject)" },
  error: { type: "string", value: "text", description: "only letters whose error contains this text" },
} as const;

function servicesOf(input: Input): readonly ServiceName[] {
  const s = stringFlag(input, "service");
  if (s === undefined) return DLQ_SERVICES;
  if (!(DLQ_SERVICES as readonly string[]).includes(s)) {
    throw new UsageError(`--service must be one of ${DLQ_SERVICES.join(", ")}, got ${s}`);
  }
  return [s as ServiceName];
}

function filterOf(input: Input): { source?: string; error?: string } | undefined {
  const source = stringFlag(input, "source");
  const error = stringFlag(input, "error");
  if (source === undefined && error === undefined) return undefined;
  return { ...(source === undefined ? {} : { source }), ...(error === undefined ? {} : { error }) };
}

/** A service without the DLQ routes (404) or that does not let the ops client at them (403) is passed over. */
function notServed(err: unknown): boolean {
  return err instanceof RemoteError && (err.status === 404 || err.status === 403);
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

/** Scalar fields shown in the list table, in this order when present; the rest go to `dlq show`. */
const LIST_FIELDS = ["id", "source", "topic", "error", "attempts", "deadAt", "failedAt", "createdAt"];

export const dlqList: Command = {
  path: ["dlq", "list"],
  summary: "Lists dead letters of every service (or --service), newest as the services order them.",
  flags: {
    ...SERVICE_FLAG,
    ...FILTER_FLAGS,
    limit: { type: "string", value: "n", description: "at most this many per service (default 100)" },
  },
  async run(cli, input) {
    const query = new URLSearchParams();
    const filter = filterOf(input);
    if (filter?.source) query.set("source", filter.source);
    if (filter?.error) query.set("error", filter.error);
    query.set("limit", String(intFlag(input, "limit", 1, 10_000, 100)));
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
    const present = new Set(letters.flatMap((l) => Object.keys(l)));
    const fields = ["service", ...LIST_FIELDS.filter((f) => present.has(f))];
    cli.print(table(fields.map((f) => f.toUpperCase()), letters.map((l) => fields.map((f) => short(l[f])))));
    return 0;
  },
};

function short(v: unknown): unknown {
  if (typeof v === "string" && v.length > 60) return `${v.slice(0, 59)}…`;
  return v;
}

export const dlqShow: Command = {
  path: ["dlq", "show"],
  args: ["<id>"],
  summary: "Shows one dead letter: payload, headers, error, attempts, source.",
  flags: SERVICE_FLAG,
  async run(cli, input) {
    const id = input.positionals[0];
    if (!/^[\w.:-]{1,200}$/.test(id)) throw new UsageError(`${JSON.stringify(id)} is not a dead-letter id`);
    for (const service of servicesOf(input)) {
      try {
        const letter = await cli.call(service, `/admin/dlq/${encodeURIComponent(id)}`);
        if (cli.json) cli.printJson({ service, letter });
        else cli.print(describe({ service, ...(letter as Record<string, unknown>) }));
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
  summary: "Publishes dead letters again to their source: by id, by --source/--error, or --all; at a bounded rate.",
  flags: {
    ...SERVICE_FLAG,
    ...FILTER_FLAGS,
    all: { type: "boolean", description: "every dead letter" },
    rate: { type: "string", value: "n", description: "at most n messages a second (the service's default if unset)" },
  },
  async run(cli, input) {
    const ids = input.positionals;
    const filter = filterOf(input);
    const all = input.values.all === true;
    exactlyOneSelection(ids, filter, all);
    const rate = input.values.rate === undefined ? undefined : numberFlag(input, "rate", 0.1, 100_000, 0);
    const services = servicesOf(input);
    const base = rate === undefined ? {} : { ratePerSec: rate };
    const perService = new Map<string, number>();
    const add = (s: string, n: number) => perService.set(s, (perService.get(s) ?? 0) + n);
    const batches = ids.length > 0 ? chunks(ids, BATCH) : [undefined];
    const progress = new Progress("redrive", ids.length > 0 ? ids.length : services.length);
    try {
      for (const batch of batches) {
        const body = batch ? { ...base, ids: batch } : { ...base, filter: filter ?? {} };
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
  summary: "Deletes dead letters for good: by id, by --source/--error, or --all (which needs --yes).",
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
  if (chosen !== 1) throw new UsageError("name dead-letter ids, or --source/--error, or --all (exactly one of them)");
  for (const id of ids) {
    if (!/^[\w.:-]{1,200}$/.test(id)) throw new UsageError(`${JSON.stringify(id)} is not a dead-letter id`);
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
