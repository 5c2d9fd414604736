import { editHeaders } from "./_headers.ts";
import { invoke, type Middleware } from "./handler.ts";

/**
 * `Strict-Transport-Security` settings for {@linkcode SecurityHeadersOptions.strictTransportSecurity}.
 *
 * @example HTTPS only for a year, subdomains included
 * ```ts
 * import { securityHeaders, type StrictTransportSecurity } from "./security_headers.ts";
 * const hsts: StrictTransportSecurity = { maxAgeSec: 31_536_000, includeSubDomains: true };
 * const middleware = securityHeaders({ strictTransportSecurity: hsts });
 * ```
 */
export interface StrictTransportSecurity {
  /** How long browsers must use HTTPS only, in seconds. */
  maxAgeSec: number;
  /** Whether subdomains are covered too. @default {false} */
  includeSubDomains?: boolean;
  /** Whether to ask for inclusion in browsers' preload lists. @default {false} */
  preload?: boolean;
}

/**
 * Options for {@linkcode securityHeaders}. Set a header's option to `false` to leave that header out.
 *
 * @example Leave framing rules to a proxy
 * ```ts
 * import { securityHeaders, type SecurityHeadersOptions } from "./security_headers.ts";
 * const options: SecurityHeadersOptions = { contentSecurityPolicy: "default-src 'none'", frameOptions: false };
 * const middleware = securityHeaders(options);
 * ```
 */
export interface SecurityHeadersOptions {
  /**
   * `Content-Security-Policy`. The default suits a JSON API: nothing may load, nothing may frame it.
   *
   * @example A page that loads its own scripts
   * ```ts
   * import { securityHeaders } from "./security_headers.ts";
   * securityHeaders({ contentSecurityPolicy: "default-src 'self'" });
   * ```
   * @default {"default-src 'none'; frame-ancestors 'none'"}
   */
  contentSecurityPolicy?: string | false;
  /**
   * `Referrer-Policy`.
   *
   * @example
   * ```ts
   * import { securityHeaders } from "./security_headers.ts";
   * securityHeaders({ referrerPolicy: "strict-origin-when-cross-origin" });
   * ```
   * @default {"no-referrer"}
   */
  referrerPolicy?: string | false;
  /**
   * `X-Frame-Options`, for browsers that predate `frame-ancestors`.
   *
   * @example
   * ```ts
   * import { securityHeaders } from "./security_headers.ts";
   * securityHeaders({ frameOptions: "SAMEORIGIN" });
   * ```
   * @default {"DENY"}
   */
  frameOptions?: "DENY" | "SAMEORIGIN" | false;
  /**
   * Whether to send `X-Content-Type-Options: nosniff`.
   *
   * @example
   * ```ts
   * import { securityHeaders } from "./security_headers.ts";
   * securityHeaders({ noSniff: true });
   * ```
   * @default {true}
   */
  noSniff?: boolean;
  /**
   * `Strict-Transport-Security`, sent only when configured: only a service reached over HTTPS (or behind a proxy
   * that terminates it) should send it.
   *
   * @example One year, subdomains included
   * ```ts
   * import { securityHeaders } from "./security_headers.ts";
   * securityHeaders({ strictTransportSecurity: { maxAgeSec: 31_536_000, includeSubDomains: true } });
   * ```
   * @default {undefined}
   */
  strictTransportSecurity?: StrictTransportSecurity;
}

/**
 * Adds browser security headers to every response (`X-Content-Type-Options`, `Referrer-Policy`, `X-Frame-Options`,
 * `Content-Security-Policy`, and `Strict-Transport-Security` when configured). A header the handler set is kept,
 * so one route can loosen a policy. Place it outside `recovery()` so error responses get the headers too.
 *
 * @example
 * ```ts
 * import { chain } from "./handler.ts";
 * import { securityHeaders } from "./security_headers.ts";
 * const h = chain(securityHeaders())(async () => Response.json({ ok: true }));
 * (await h(new Request("http://api/"))).headers.get("x-frame-options"); // "DENY"
 * ```
 */
export function securityHeaders(options: SecurityHeadersOptions = {}): Middleware {
  const pairs: [string, string][] = [];
  if (options.noSniff ?? true) pairs.push(["x-content-type-options", "nosniff"]);
  const referrer = options.referrerPolicy ?? "no-referrer";
  if (referrer) pairs.push(["referrer-policy", referrer]);
  const frame = options.frameOptions ?? "DENY";
  if (frame) pairs.push(["x-frame-options", frame]);
  const csp = options.contentSecurityPolicy ?? "default-src 'none'; frame-ancestors 'none'";
  if (csp) pairs.push(["content-security-policy", csp]);
  const hsts = options.strictTransportSecurity;
  if (hsts) {
    if (!Number.isSafeInteger(hsts.maxAgeSec) || hsts.maxAgeSec < 0) {
      throw new RangeError(
        `Cannot send Strict-Transport-Security with maxAgeSec as a non-negative integer: current value is ${hsts.maxAgeSec}`,
      );
    }
    let value = `max-age=${hsts.maxAgeSec}`;
    if (hsts.includeSubDomains) value += "; includeSubDomains";
    if (hsts.preload) value += "; preload";
    pairs.push(["strict-transport-security", value]);
  }
  const apply = (h: Headers) => {
    for (const [name, value] of pairs) if (!h.has(name)) h.set(name, value);
  };
  return (next) =>
    function securityHeaders(req) {
      return invoke(next, req).then((res) => editHeaders(res, apply));
    };
}
