/**
 * The pathname of `req.url`, parsed once per request however many layers ask: the service's built-in routes and the
 * router both need it, one right after the other in the same synchronous call chain, and a URL parse is a
 * measurable part of a small request. `Request.url` never changes, so a cache keyed by the request object is exact;
 * it holds one entry, so it keeps no request alive beyond the next one.
 *
 * @example
 * ```ts
 * import { pathnameOf } from "./url.ts";
 * const path = pathnameOf(new Request("http://localhost/orders/o-1?full=1"));
 * if (path !== "/orders/o-1") throw new Error(path);
 * ```
 */
export function pathnameOf(req: Request): string {
  if (req !== lastRequest) {
    lastPathname = new URL(req.url).pathname;
    lastRequest = req;
  }
  return lastPathname;
}

let lastRequest: Request | undefined;
let lastPathname = "";
