import { currentContext } from "../context/mod.ts";
import { badRequest, errorResponse, type Handler, HttpError, json, notFound, readJson } from "../http/mod.ts";
import type { Reconciler } from "./reconciler.ts";

/**
 * The two management handlers of a {@linkcode Reconciler} (mount them behind an ops-scoped guard):
 *
 * - `run`, for `POST /admin/reconcile`: body `{"repair": boolean}` (`application/json`; an empty body is a dry run),
 *   answers 200 with the {@linkcode ReconcileReport} as JSON. Any other body is 400 (415 for another content type)
 *   problem+json. The run follows the request's deadline (the service's default budget, or the caller's
 *   `x-deadline-ms`, epoch milliseconds): past it the run is cancelled (no new repair starts; those made stay made)
 *   and the request fails as any request past its deadline does.
 * - `last`, for `GET /admin/reconcile/last`: the last report (of a run on demand or on schedule), or 404 problem+json
 *   before the first run.
 *
 * Responses carry `cache-control: no-store`.
 *
 * @example Mounted on a router behind a guard
 * ```ts
 * import { Router } from "../http/mod.ts";
 * import { Reconciler, reconcileEndpoints } from "./mod.ts";
 * await using reconciler = new Reconciler({ name: "orders", checks: [] });
 * const { run, last } = reconcileEndpoints(reconciler);
 * const router = new Router().post("/admin/reconcile", (req) => run(req)).get("/admin/reconcile/last", (req) => last(req));
 * const res = await router.handler(
 *   new Request("http://x/admin/reconcile", { method: "POST", body: '{"repair":false}', headers: { "content-type": "application/json" } }),
 * );
 * console.assert(res.status === 200);
 * ```
 */
export function reconcileEndpoints(reconciler: Reconciler): { run: Handler; last: Handler } {
  return {
    async run(req) {
      let repair: boolean;
      try {
        repair = await readRepair(req);
      } catch (err) {
        if (err instanceof HttpError) return errorResponse(err);
        throw err;
      }
      const report = await reconciler.run({ repair, signal: currentContext()?.signal });
      return json(report, 200, NO_STORE);
    },
    last() {
      const report = reconciler.last;
      if (!report) return Promise.resolve(errorResponse(notFound(`reconciler ${reconciler.name} has not run yet`)));
      return Promise.resolve(json(report, 200, NO_STORE));
    },
  };
}

async function readRepair(req: Request): Promise<boolean> {
  const body = req.body === null ? {} : await readJson(req, { maxBytes: 4096 });
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw badRequest('the body must be a JSON object such as {"repair": false}');
  }
  const unknown = Object.keys(body).filter((k) => k !== "repair");
  if (unknown.length > 0) throw badRequest(`unknown field: ${unknown.join(", ")} (only "repair" is accepted)`);
  const repair = (body as { repair?: unknown }).repair ?? false;
  if (typeof repair !== "boolean") {
    throw badRequest(`repair must be true or false, got ${JSON.stringify(repair)}`);
  }
  return repair;
}

const NO_STORE = { "cache-control": "no-store" };
