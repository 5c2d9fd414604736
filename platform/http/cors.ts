import { editHeaders } from "./_headers.ts";
import { invoke, type Middleware } from "./handler.ts";
import { problemResponse } from "./problem.ts";

/**
 * Options for {@linkcode cors}.
 *
 * @example Any origin, no credentials
 * ```ts
 * import { cors, type CorsOptions } from "./cors.ts";
 * const options: CorsOptions = { origins: "*", exposeHeaders: ["x-request-id"] };
 * const middleware = cors(options);
 * ```
 */
export interface CorsOptions {
  /**
   * Origins allowed to call from a browser, compared exactly (`"https://shop.example"`), or `"*"` for any origin
   * (only without `credentials`).
   *
   * @example
   * ```ts
   * import { cors } from "./cors.ts";
   * cors({ origins: ["https://shop.example", "https://admin.shop.example"] });
   * ```
   */
  origins: readonly string[] | "*";
  /**
   * Methods a preflight allows.
   *
   * @example
   * ```ts
   * import { cors } from "./cors.ts";
   * cors({ origins: "*", methods: ["GET", "POST"] });
   * ```
   * @default {["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"]}
   */
  methods?: readonly string[];
  /**
   * Request headers a preflight allows. Left out, a preflight allows the headers it asks for.
   *
   * @example
   * ```ts
   * import { cors } from "./cors.ts";
   * cors({ origins: "*", headers: ["authorization", "content-type", "idempotency-key"] });
   * ```
   * @default {undefined}
   */
  headers?: readonly string[];
  /**
   * Response headers the browser lets scripts read beyond the CORS-safelisted ones.
   *
   * @example
   * ```ts
   * import { cors } from "./cors.ts";
   * cors({ origins: "*", exposeHeaders: ["x-request-id", "retry-after"] });
   * ```
   * @default {[]}
   */
  exposeHeaders?: readonly string[];
  /**
   * Whether browsers may send cookies and HTTP auth. Requires a list of `origins`: the allowed origin is echoed,
   * never `*`.
   *
   * @example
   * ```ts
   * import { cors } from "./cors.ts";
   * cors({ origins: ["https://shop.example"], credentials: true });
   * ```
   * @default {false}
   */
  credentials?: boolean;
  /**
   * How long a browser may cache a preflight answer, in seconds.
   *
   * @example
   * ```ts
   * import { cors } from "./cors.ts";
   * cors({ origins: "*", maxAgeSec: 3600 });
   * ```
   * @default {600}
   */
  maxAgeSec?: number;
}

/**
 * Cross-origin resource sharing. A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is
 * answered here, without calling the handler: 204 with the allow headers for an allowed origin, 403 problem+json
 * for any other. Other requests run the handler; an allowed origin gets `Access-Control-Allow-Origin` (the exact
 * origin when `origins` is a list, so the response carries `Vary: Origin`), credentials and exposed headers.
 * Headers the handler already set are kept.
 *
 * @example Let one web app call the API with cookies
 * ```ts
 * import { cors } from "./cors.ts";
 * import { chain } from "./handler.ts";
 * const h = chain(cors({ origins: ["https://shop.example"], credentials: true }))(async () => new Response("ok"));
 * const res = await h(new Request("http://api/v1/orders", { headers: { origin: "https://shop.example" } }));
 * res.headers.get("access-control-allow-origin"); // "https://shop.example"
 * ```
 */
export function cors(options: CorsOptions): Middleware {
  const { origins, credentials = false, maxAgeSec = 600 } = options ?? {};
  if (origins !== "*" && !Array.isArray(origins)) {
    throw new TypeError(`Cannot use origins as a list of origins or "*": current value is ${JSON.stringify(origins)}`);
  }
  if (origins === "*" && credentials) {
    throw new TypeError(
      'Cannot allow credentials for origins as "*": current value is "*" (list the trusted origins instead)',
    );
  }
  if (!Number.isSafeInteger(maxAgeSec) || maxAgeSec < 0) {
    throw new RangeError(`Cannot cache preflights for maxAgeSec: current value is ${maxAgeSec}`);
  }
  const anyOrigin = origins === "*";
  const allowed = new Set(anyOrigin ? [] : origins);
  const methods = (options.methods ?? ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"]).join(", ");
  const allowHeaders = options.headers?.join(", ");
  const expose = options.exposeHeaders?.length ? options.exposeHeaders.join(", ") : undefined;
  const maxAge = String(maxAgeSec);

  const isAllowed = (origin: string) => anyOrigin || allowed.has(origin);
  const allowOrigin = (origin: string) => anyOrigin ? "*" : origin;

  function preflight(req: Request, origin: string): Response {
    if (!isAllowed(origin)) {
      return problemResponse(403, "cors-origin-denied", "Origin not allowed", {
        detail: `origin ${JSON.stringify(origin)} may not call this API`,
        headers: anyOrigin ? {} : { vary: "Origin" },
      });
    }
    const headers = new Headers({
      "access-control-allow-origin": allowOrigin(origin),
      "access-control-allow-methods": methods,
      "access-control-max-age": maxAge,
    });
    const requested = req.headers.get("access-control-request-headers");
    const allowH = allowHeaders ?? requested;
    if (allowH) headers.set("access-control-allow-headers", allowH);
    if (credentials) headers.set("access-control-allow-credentials", "true");
    const vary = anyOrigin ? [] : ["Origin"];
    if (allowHeaders === undefined && requested) vary.push("Access-Control-Request-Headers");
    if (vary.length) headers.set("vary", vary.join(", "));
    return new Response(null, { status: 204, headers });
  }

  return (next) =>
    function cors(req) {
      const origin = req.headers.get("origin");
      if (origin !== null && req.method === "OPTIONS" && req.headers.has("access-control-request-method")) {
        return Promise.resolve(preflight(req, origin));
      }
      const grant = origin !== null && isAllowed(origin);
      if (!grant && anyOrigin) return invoke(next, req);
      return invoke(next, req).then((res) =>
        editHeaders(res, (h) => {
          // The answer depends on Origin whenever origins is a list, including when no Origin came: caches must know.
          if (!anyOrigin) appendVary(h, "Origin");
          if (!grant || h.has("access-control-allow-origin")) return;
          h.set("access-control-allow-origin", allowOrigin(origin));
          if (credentials) h.set("access-control-allow-credentials", "true");
          if (expose && !h.has("access-control-expose-headers")) h.set("access-control-expose-headers", expose);
        })
      );
    };
}

function appendVary(h: Headers, name: string): void {
  const vary = h.get("vary");
  if (vary === null) return h.set("vary", name);
  const lower = name.toLowerCase();
  if (vary.split(",").some((v) => v.trim().toLowerCase() === lower || v.trim() === "*")) return;
  h.set("vary", `${vary}, ${name}`);
}
