import { authenticate, type RemoteJwks, requireScopes } from "@trellis/platform/auth";
import { chain, type RouteHandler } from "@trellis/platform/http";
import type { OutboxHistoryRow } from "../orders/queries.ts";
import type { SystemConfig } from "./config.ts";
import { verifierFor } from "./wiring.ts";

/** The scope of the read-only management endpoints (`GET /admin/...`) the `trellis` CLI and `trellis top` call. */
export const OPS_READ = "ops:read";

/** Wraps one route's handler so only an authorised caller reaches it. */
export type RouteGuard = (handler: RouteHandler) => RouteHandler;

/**
 * Guards management routes (the book's dual API: the same service, a second audience of callers): a service token
 * addressed to `audience` carrying `scope`, as the `ops` client holds. Per route, so routes needing other scopes
 * (`ops:dlq`, `ops:reconcile`) sit on the same router with their own guard.
 */
export function adminGuard(config: SystemConfig, jwks: RemoteJwks, audience: string, scope = OPS_READ): RouteGuard {
  const guard = chain(authenticate(verifierFor(config, jwks, audience)), requireScopes(scope));
  return (handler) => (req, params) => guard((r) => handler(r, params))(req);
}

/** One message a service's outbox holds for a key (an order's saga step), published or still waiting. */
export interface OutboxEntry {
  id: string;
  topic: string;
  /** The payload's `type` (e.g. `inventory.reserved.v1`). */
  type: string;
  createdAt: string;
  /** When the relay published it; `null` while it waits. */
  publishedAt: string | null;
  payload: unknown;
}

/**
 * The messages a service's outbox holds for a key, oldest first, from the rows of its `outboxHistory` query: for an
 * order, the saga messages the service sent about it. Each service's queries.sql holds the same statement over the
 * SDK's outbox table (in every service's database), so their row types are one. The relay deletes published rows
 * after its retention (an hour by default), so older history is gone.
 */
export function outboxEntries(rows: readonly OutboxHistoryRow[]): OutboxEntry[] {
  return rows.map((r) => {
    let payload: unknown = r.payload;
    try {
      payload = JSON.parse(r.payload);
    } catch { /* kept as the text it is */ }
    const type = (payload as { type?: unknown } | null)?.type;
    return {
      id: r.id,
      topic: r.topic,
      type: typeof type === "string" ? type : "",
      createdAt: r.created_at.toISOString(),
      publishedAt: r.published_at?.toISOString() ?? null,
      payload,
    };
  });
}
