import { registerSecret } from "../log/mod.ts";

/**
 * Options for {@linkcode secret}.
 *
 * @example Read a secret file through an injected reader
 * ```ts
 * import { secret, type SecretOptions } from "./secrets.ts";
 * const options: SecretOptions = {
 *   env: { DB_PASSWORD_FILE: "/run/secrets/db_password" },
 *   readFile: () => "pa55word\n",
 * };
 * secret("DB_PASSWORD", options); // "pa55word"
 * ```
 */
export interface SecretOptions {
  /**
   * Where `NAME` and `NAME_FILE` are looked up; pass the record a config loader already read.
   * @default {Deno.env}
   */
  env?: Record<string, string | undefined>;
  /**
   * Returned when neither `NAME` nor `NAME_FILE` is set. Leave it out for secrets that must be configured; give it
   * only for development defaults, and name them so (`"dev-only-..."`) so they stand out in a leak or a review.
   * @default {undefined}
   */
  fallback?: string;
  /** Reads the file named by `NAME_FILE`, injectable for tests. @default {Deno.readTextFileSync} */
  readFile?: (path: string) => string;
}

const NAME = /^[A-Z_][A-Z0-9_]*$/;

/**
 * Reads the secret `name` from the environment variable `NAME`, or from the file named by `NAME_FILE` (the
 * Docker/Kubernetes secrets convention, so the value never appears in the process environment). The value is
 * trimmed, since secret files usually end with a newline. The value is registered with the logger
 * (`registerSecret` of `@trellis/platform/log`), so no log line carries it. A missing, empty, unreadable or doubly-set secret throws
 * a `TypeError` naming the variable, never its value.
 *
 * @example Read a client secret, from `ORDERS_CLIENT_SECRET` or `ORDERS_CLIENT_SECRET_FILE`
 * ```ts
 * import { secret } from "./secrets.ts";
 * const value = secret("ORDERS_CLIENT_SECRET", { env: { ORDERS_CLIENT_SECRET: "s3cret\n" } });
 * value; // "s3cret"
 * ```
 *
 * @example A development default when nothing is configured
 * ```ts
 * import { secret } from "./secrets.ts";
 * const value = secret("OPS_CLIENT_SECRET", { env: {}, fallback: "dev-only-ops-secret" });
 * ```
 */
export function secret(name: string, options: SecretOptions = {}): string {
  if (!NAME.test(name)) {
    throw new TypeError(`Cannot read secret ${JSON.stringify(name)}: names are upper-case environment variable names`);
  }
  const env = options.env;
  const get = env ? (k: string) => env[k] : (k: string) => Deno.env.get(k);
  const direct = get(name);
  const path = get(`${name}_FILE`);
  if (direct !== undefined && path !== undefined) {
    throw new TypeError(`Cannot read secret ${name}: both ${name} and ${name}_FILE are set; set only one`);
  }
  let value: string;
  if (path !== undefined) {
    try {
      value = (options.readFile ?? Deno.readTextFileSync)(path);
    } catch (cause) {
      throw new TypeError(
        `Cannot read secret ${name} from ${name}_FILE=${JSON.stringify(path)}: ${(cause as Error).message}`,
        { cause },
      );
    }
  } else if (direct !== undefined) {
    value = direct;
  } else if (options.fallback !== undefined) {
    registerSecret(options.fallback);
    return options.fallback;
  } else {
    throw new TypeError(`Cannot read secret ${name}: set ${name} or ${name}_FILE`);
  }
  value = value.trim();
  if (value === "") {
    throw new TypeError(
      `Cannot read secret ${name}: ${path !== undefined ? `the file ${name}_FILE names` : name} is empty`,
    );
  }
  registerSecret(value);
  return value;
}
