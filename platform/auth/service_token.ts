/**
 * Options for {@linkcode serviceTokenSource}.
 *
 * @example A token source with an injected fetch
 * ```ts
 * import { serviceTokenSource, type ServiceTokenSourceOptions } from "./service_token.ts";
 * const options: ServiceTokenSourceOptions = {
 *   tokenUrl: "https://auth.trellis.test/oauth/token",
 *   clientId: "gateway",
 *   clientSecret: "s3cret",
 *   audience: "orders",
 *   fetch: () => Promise.resolve(Response.json({ access_token: "t-1", token_type: "Bearer", expires_in: 300 })),
 * };
 * await serviceTokenSource(options)(); // "t-1"
 * ```
 */
export interface ServiceTokenSourceOptions {
  /** The OAuth 2.0 token endpoint. */
  tokenUrl: string | URL;
  clientId: string;
  clientSecret: string;
  /** The service the tokens are for. */
  audience: string;
  /** Scopes to ask for; omitted from the request when empty. @default {[]} */
  scopes?: readonly string[];
  /** Fetch a new token this long before the current one expires (at most half its lifetime). @default {30} */
  refreshBeforeSec?: number;
  /** Abort a token request after this long. @default {5000} */
  timeoutMs?: number;
  /** The fetch to use, injectable for tests. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Clock in epoch milliseconds, injectable for tests. @default {Date.now} */
  now?: () => number;
}

/**
 * Returns a function that yields a bearer token for service-to-service calls, fetched with the OAuth 2.0
 * `client_credentials` grant (`client_secret_post`). The token is cached until `refreshBeforeSec` before it
 * expires; concurrent callers share one request; if a refresh fails while the cached token is still valid, the
 * cached token is returned. Errors name the endpoint and the OAuth `error` but never the secret.
 *
 * @example Attach a service token to a call
 * ```ts
 * import { serviceTokenSource } from "./service_token.ts";
 * const token = serviceTokenSource({
 *   tokenUrl: "http://auth.internal/oauth/token",
 *   clientId: "gateway",
 *   clientSecret: "s3cret",
 *   audience: "orders",
 *   scopes: ["orders:write"],
 * });
 * const call = async () => fetch("http://orders.internal/", { headers: { authorization: `Bearer ${await token()}` } });
 * ```
 */
export function serviceTokenSource(options: ServiceTokenSourceOptions): () => Promise<string> {
  const href = new URL(options.tokenUrl).href;
  const { clientId, clientSecret, audience } = options;
  const scopes = options.scopes ?? [];
  const refreshBeforeMs = (options.refreshBeforeSec ?? 30) * 1000;
  const timeoutMs = options.timeoutMs ?? 5_000;
  const fetchImpl = options.fetch ?? globalThis.fetch;
  const now = options.now ?? Date.now;
  if (!clientId || !clientSecret || !audience) {
    throw new TypeError("Cannot create a service token source without clientId, clientSecret and audience");
  }
  if (!(refreshBeforeMs >= 0)) {
    throw new RangeError(`Cannot create a service token source with refreshBeforeSec as ${options.refreshBeforeSec}`);
  }

  let cached: { token: string; expiresAt: number; refreshAt: number } | undefined;
  let inflight: Promise<string> | undefined;

  async function fetchToken(): Promise<string> {
    const form = new URLSearchParams({
      grant_type: "client_credentials",
      client_id: clientId,
      client_secret: clientSecret,
      audience,
    });
    if (scopes.length > 0) form.set("scope", scopes.join(" "));
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException(`token request timed out after ${timeoutMs} ms`, "TimeoutError")),
      timeoutMs,
    );
    const requestedAt = now();
    try {
      let res: Response;
      try {
        res = await fetchImpl(href, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
          body: form,
          signal: controller.signal,
        });
      } catch (cause) {
        throw new Error(`Cannot get a service token from ${href}: ${describe(cause)}`, { cause });
      }
      const text = await res.text();
      let body: Record<string, unknown> | undefined;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (!res.ok) {
        const oauth = typeof body?.error === "string"
          ? ` (${body.error}${typeof body.error_description === "string" ? `: ${body.error_description}` : ""})`
          : "";
        throw new Error(`Cannot get a service token from ${href}: HTTP ${res.status}${oauth}`);
      }
      const accessToken = body?.access_token;
      const tokenType = body?.token_type;
      const expiresIn = body?.expires_in;
      if (typeof accessToken !== "string" || accessToken === "") {
        throw new Error(`Cannot use the token response from ${href}: no access_token`);
      }
      if (typeof tokenType !== "string" || tokenType.toLowerCase() !== "bearer") {
        throw new Error(`Cannot use the token response from ${href}: token_type is ${tokenType}, expected Bearer`);
      }
      if (typeof expiresIn !== "number" || !(expiresIn > 0)) {
        throw new Error(`Cannot use the token response from ${href}: expires_in is ${expiresIn}`);
      }
      // Measured from when the request left, so time on the wire counts against the token's lifetime.
      const lifetimeMs = expiresIn * 1000;
      const expiresAt = requestedAt + lifetimeMs;
      cached = { token: accessToken, expiresAt, refreshAt: expiresAt - Math.min(refreshBeforeMs, lifetimeMs / 2) };
      return accessToken;
    } finally {
      clearTimeout(timer);
    }
  }

  return function serviceToken() {
    const t = now();
    if (cached && t < cached.refreshAt) return Promise.resolve(cached.token);
    if (!inflight) {
      inflight = fetchToken().finally(() => {
        inflight = undefined;
      });
    }
    const stale = cached;
    if (stale && t < stale.expiresAt) return inflight.catch(() => stale.token);
    return inflight;
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
