/**
 * A stand-in for the dead-letter and reconciliation management endpoints (`/admin/dlq...`, `/admin/reconcile...`)
 * that other branches add to the services: a real HTTP server on a free port serving their agreed contract from a
 * small in-memory set of letters, recording every request, so the CLI's `dlq` and `reconcile` commands are tested over
 * a socket before those endpoints are merged. It accepts only bearer tokens issued by the running system's auth to the
 * `ops` client for `audience`, read from their payload (the signature is the real services' business).
 */
export interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  body: unknown;
}

interface Letter {
  id: string;
  source: string;
  error: string;
  attempts: number;
  deadAt: string;
  headers: Record<string, string>;
  payload: unknown;
}

const LETTERS: Letter[] = [
  {
    id: "dl-1",
    source: "trellis.inventory.commands",
    error: "SchemaError: quantity must be positive",
    attempts: 5,
    deadAt: "2026-12-04T10:00:00.000Z",
    headers: { "message-type": "inventory.reserve.v1" },
    payload: { type: "inventory.reserve.v1", orderId: "o-1" },
  },
  {
    id: "dl-2",
    source: "trellis.payments.commands",
    error: "TimeoutError: provider did not answer",
    attempts: 3,
    deadAt: "2026-12-04T10:05:00.000Z",
    headers: { "message-type": "payments.charge.v1" },
    payload: { type: "payments.charge.v1", orderId: "o-2" },
  },
];

/** Starts the stand-in; disposing stops it. */
export function opsContractServer(audience: string) {
  const requests: Recorded[] = [];
  let last: unknown = null;
  const problem = (status: number, detail: string) =>
    Response.json({ type: "about:blank", title: "error", status, detail }, {
      status,
      headers: { "content-type": "application/problem+json" },
    });
  const matching = (f: { source?: string; error?: string } = {}) =>
    LETTERS.filter((l) => (!f.source || l.source === f.source) && (!f.error || l.error.includes(f.error)));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const text = req.method === "POST" ? await req.text() : "";
    const body = text ? JSON.parse(text) : undefined;
    requests.push({ method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), body });
    const token = req.headers.get("authorization")?.replace(/^Bearer /, "") ?? "";
    let claims: { sub?: string; aud?: string } = {};
    try {
      claims = JSON.parse(atob(token.split(".")[1].replaceAll("-", "+").replaceAll("_", "/")));
    } catch { /* refused below */ }
    if (claims.sub !== "ops" || claims.aud !== audience) {
      return problem(401, "an ops token for this service is required");
    }
    const q = url.searchParams;
    if (req.method === "GET" && url.pathname === "/admin/dlq") {
      const found = matching({ source: q.get("source") ?? undefined, error: q.get("error") ?? undefined });
      return Response.json({ letters: found.slice(0, Number(q.get("limit") ?? 100)) });
    }
    const one = /^\/admin\/dlq\/([^/]+)$/.exec(url.pathname);
    if (req.method === "GET" && one) {
      const letter = LETTERS.find((l) => l.id === decodeURIComponent(one[1]));
      return letter ? Response.json(letter) : problem(404, `no dead letter ${one[1]}`);
    }
    if (req.method === "POST" && url.pathname === "/admin/dlq/redrive") {
      const n = body.ids ? LETTERS.filter((l) => body.ids.includes(l.id)).length : matching(body.filter).length;
      return Response.json({ redriven: n });
    }
    if (req.method === "POST" && url.pathname === "/admin/dlq/purge") {
      const n = body.all
        ? LETTERS.length
        : body.ids
        ? LETTERS.filter((l) => body.ids.includes(l.id)).length
        : matching(body.filter).length;
      return Response.json({ purged: n });
    }
    if (req.method === "POST" && url.pathname === "/admin/reconcile") {
      last = {
        mode: body.repair ? "repair" : "dry-run",
        startedAt: "2026-12-04T10:10:00.000Z",
        checks: [
          { check: "orders-pending-past-deadline", found: 1, repaired: body.repair ? 1 : 0 },
          { check: "reservation-without-order", found: 0, repaired: 0 },
        ],
      };
      return Response.json(last);
    }
    if (req.method === "GET" && url.pathname === "/admin/reconcile/last") {
      return last ? Response.json(last) : problem(404, "no reconciliation has run");
    }
    return problem(404, "no such route");
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}
