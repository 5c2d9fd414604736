import { loadConfig, type SystemConfig } from "../services/shared/config.ts";
import { type Input, stringFlag, UsageError } from "./command.ts";
import { readEnvFile } from "./env_file.ts";

/** The six services, in the order the CLI lists them. */
export const SERVICE_NAMES = ["gateway", "auth", "orders", "inventory", "payments", "notifications"] as const;

/** A service name. */
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** A service answered a management call with an error (its problem detail, when it sent one, is the message). */
export class RemoteError extends Error {
  override name = "RemoteError";
  constructor(readonly service: string, readonly status: number, message: string) {
    super(message);
  }
}

/** What a command runs with: its flags, the environment, the system's configuration, and the ops client's tokens. */
export class Cli {
  readonly json: boolean;
  readonly #encoder = new TextEncoder();
  #config?: SystemConfig;
  #tokens = new Map<string, Promise<() => Promise<string>>>();

  private constructor(readonly input: Input, readonly env: Record<string, string | undefined>) {
    this.json = input.values.json === true;
  }

  /** The context of one command: `--env-file` is read over the process environment. */
  static async create(input: Input, env: Record<string, string | undefined> = Deno.env.toObject()): Promise<Cli> {
    const file = stringFlag(input, "env-file");
    return new Cli(input, file ? { ...env, ...await readEnvFile(file) } : env);
  }

  /** Writes one line (or several) to stdout. */
  print(text: string): void {
    Deno.stdout.writeSync(this.#encoder.encode(text.endsWith("\n") ? text : `${text}\n`));
  }

  /** Writes `value` as JSON to stdout (`--json`). */
  printJson(value: unknown): void {
    this.print(JSON.stringify(value, null, 2));
  }

  /** The system configuration from the environment; a bad value throws the loader's one-line `RangeError`. */
  config(): SystemConfig {
    return this.#config ??= loadConfig(this.env);
  }

  /** Where each service answers HTTP: the configured host and ports, overridden by `--url name=url`. */
  urls(): Record<ServiceName, string> {
    const c = this.config();
    const host = c.hostname === "0.0.0.0" ? "127.0.0.1" : c.hostname;
    const urls = Object.fromEntries(SERVICE_NAMES.map((s) => [s, `http://${host}:${c.ports[s]}`])) as Record<
      ServiceName,
      string
    >;
    urls.auth = c.authUrl.replace(/\/+$/, "") || urls.auth;
    const overrides = this.input.values.url;
    for (const o of Array.isArray(overrides) ? overrides : []) {
      const m = /^([a-z]+)=(https?:\/\/.+)$/.exec(o);
      if (!m || !(SERVICE_NAMES as readonly string[]).includes(m[1])) {
        throw new UsageError(`--url must be name=http://host:port with name one of ${SERVICE_NAMES.join(", ")}`);
      }
      urls[m[1] as ServiceName] = m[2].replace(/\/+$/, "");
    }
    return urls;
  }

  /** A bearer token of the `ops` client for `audience` (client credentials at auth's token endpoint), cached. */
  async token(audience: string): Promise<string> {
    let source = this.#tokens.get(audience);
    if (!source) {
      const tokenUrl = `${this.urls().auth}/oauth/token`;
      const clientSecret = this.config().clientSecrets.ops;
      // Loaded on first use: the auth package (jose and all) costs a second of start-up that `health` never needs.
      source = import("@trellis/platform/auth").then(({ serviceTokenSource }) =>
        serviceTokenSource({ tokenUrl, clientId: "ops", clientSecret, audience })
      );
      this.#tokens.set(audience, source);
    }
    return (await source)();
  }

  /**
   * Calls a management endpoint of `service` as the ops client and resolves its JSON body; a non-2xx answer throws
   * {@linkcode RemoteError} with the problem's detail, an unreachable service an `Error` naming it.
   */
  async call(service: ServiceName, path: string, init: { method?: string; body?: unknown } = {}): Promise<unknown> {
    const url = `${this.urls()[service]}${path}`;
    const token = await this.token(service);
    let res: Response;
    try {
      res = await fetch(url, {
        method: init.method ?? "GET",
        headers: {
          authorization: `Bearer ${token}`,
          ...(init.body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      throw new Error(`cannot reach ${service} at ${url}: ${reason(err)}`);
    }
    const text = await res.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch { /* a non-JSON error body is reported by status below */ }
    if (!res.ok) {
      const p = body as { detail?: string; title?: string } | undefined;
      throw new RemoteError(
        service,
        res.status,
        `${service} answered ${res.status}: ${p?.detail ?? p?.title ?? text.slice(0, 200)}`,
      );
    }
    return body;
  }
}

/** The message of an error without the stack, on one line. */
export function reason(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string } };
  const msg = e?.message ?? String(err);
  return msg.split("\n")[0];
}
