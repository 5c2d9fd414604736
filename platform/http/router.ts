import { pathnameOf } from "./url.ts";
import { currentContext } from "../context/mod.ts";
import type { Handler } from "./handler.ts";
import { problemResponse } from "./problem.ts";
import { nameServerSpan, tracingEnabled, withService } from "../telemetry/mod.ts";

/**
 * A handler that also receives the path parameters of its route.
 *
 * @example A handler reading its path parameter
 * ```ts
 * import { type RouteHandler, Router } from "./router.ts";
 * const getOrder: RouteHandler = async (_req, params) => Response.json({ id: params.id });
 * const router = new Router().get("/v1/orders/:id", getOrder);
 * ```
 */
export type RouteHandler = (req: Request, params: Record<string, string>) => Promise<Response>;

interface Route {
  method: string;
  template: string;
  pattern: URLPattern;
  handler: RouteHandler;
}

/**
 * A router on `URLPattern`: path params, method matching, 404, and 405 with `Allow`. The matched route template is
 * stored on the current context (`ctx.route`) for logs and metric labels. With tracing on (`OTEL_DENO=true`) it also
 * names the request's server span after the route (`POST /v1/orders`) and attributes the handler's spans to
 * `options.service`.
 *
 * @example
 * ```ts
 * import { Router } from "./router.ts";
 * const router = new Router().get("/v1/orders/:id", async (_req, { id }) => Response.json({ id }));
 * const res = await router.handler(new Request("http://x/v1/orders/o-1"));
 * ```
 */
export class Router {
  #routes: Route[] = [];
  #byPath = new Map<string, Route[]>();
  #service: string | undefined;

  /**
   * @param options.service The service this router serves, on its spans (one process may host several).
   * @default {{}}
   */
  constructor(options: { service?: string } = {}) {
    this.#service = options.service;
  }

  /** Adds a route for `method` (upper case) and a pathname template such as `/v1/orders/:id`. */
  on(method: string, template: string, handler: RouteHandler): this {
    const route = { method: method.toUpperCase(), template, pattern: new URLPattern({ pathname: template }), handler };
    this.#routes.push(route);
    if (!template.includes(":") && !template.includes("*")) {
      const list = this.#byPath.get(template) ?? [];
      list.push(route);
      this.#byPath.set(template, list);
    }
    return this;
  }
  get(template: string, handler: RouteHandler): this {
    return this.on("GET", template, handler);
  }
  post(template: string, handler: RouteHandler): this {
    return this.on("POST", template, handler);
  }
  put(template: string, handler: RouteHandler): this {
    return this.on("PUT", template, handler);
  }
  delete(template: string, handler: RouteHandler): this {
    return this.on("DELETE", template, handler);
  }

  /** The router as a plain {@linkcode Handler}. */
  get handler(): Handler {
    return (req) => this.#dispatch(req);
  }

  #dispatch(req: Request): Promise<Response> {
    const pathname = pathnameOf(req);
    const method = req.method === "HEAD" ? "GET" : req.method;
    let allowed: Set<string> | undefined;
    // Static paths skip URLPattern entirely: it is the common case and the pattern match is the costly part.
    const candidates = this.#byPath.get(pathname);
    if (candidates) {
      for (const r of candidates) {
        if (r.method === method) return this.#run(r, req, {});
        (allowed ??= new Set()).add(r.method);
      }
    }
    for (const r of this.#routes) {
      if (candidates?.includes(r)) continue;
      const m = r.pattern.exec({ pathname: pathname });
      if (!m) continue;
      if (r.method !== method) {
        (allowed ??= new Set()).add(r.method);
        continue;
      }
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.pathname.groups)) if (v !== undefined) params[k] = decodeSafe(v);
      return this.#run(r, req, params);
    }
    if (allowed) {
      if (allowed.has("GET")) allowed.add("HEAD");
      return Promise.resolve(problemResponse(405, "method-not-allowed", "Method not allowed", {
        detail: `${req.method} is not allowed on ${pathname}`,
        headers: { allow: [...allowed].sort().join(", ") },
      }));
    }
    return Promise.resolve(problemResponse(404, "not-found", "Not found", { detail: `no route for ${pathname}` }));
  }

  #run(route: Route, req: Request, params: Record<string, string>): Promise<Response> {
    const ctx = currentContext();
    if (ctx) ctx.route = route.template;
    if (tracingEnabled) return this.#traced(route, req, params);
    return route.handler(req, params);
  }

  /** Names the request's server span after the route and runs the handler in the router's service. */
  #traced(route: Route, req: Request, params: Record<string, string>): Promise<Response> {
    nameServerSpan(route.method, route.template, this.#service);
    return this.#service ? withService(this.#service, () => route.handler(req, params)) : route.handler(req, params);
  }
}

function decodeSafe(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}
