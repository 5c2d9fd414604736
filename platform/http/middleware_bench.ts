import { bodyLimit } from "./body_limit.ts";
import { cors } from "./cors.ts";
import { chain, type Handler, type Middleware } from "./handler.ts";
import { requestContext } from "./middleware.ts";
import { MemoryRateLimitStore, rateLimit } from "./rate_limit.ts";
import { securityHeaders } from "./security_headers.ts";
import { tracing } from "./tracing.ts";

// Per-request cost of each middleware: the same handler bare and wrapped, calling the handler with a Request
// (no socket), so the difference is the middleware's own work. The request is built inside each iteration because
// bodyLimit consumes it; the baseline pays the same.
const handler: Handler = () => Promise.resolve(new Response("ok"));
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

function get(headers: Record<string, string> = {}): Request {
  return new Request("http://api/v1/orders", { headers });
}
const BODY = '{"sku":"s-1","qty":1}';
// A Request built in-process has no Content-Length, like a chunked upload: bodyLimit counts it.
function post(): Request {
  return new Request("http://api/v1/orders", { method: "POST", body: BODY });
}
function postWithLength(): Request {
  return new Request("http://api/v1/orders", {
    method: "POST",
    body: BODY,
    headers: { "content-length": String(BODY.length) },
  });
}

function bench(name: string, mw: Middleware | undefined, req: () => Request, read = false, group = "GET") {
  const h = mw ? chain(mw)(handler) : handler;
  const run: Handler = read ? async (r) => (await r.text(), handler(r)) : handler;
  const wrapped = mw ? chain(mw)(run) : run;
  Deno.bench(name, { group, baseline: mw === undefined, n: 200_000, warmup: 20_000 }, async () => {
    const res = await (read ? wrapped : h)(req());
    await res.body?.cancel();
  });
}

bench("baseline", undefined, () => get());
bench("bodyLimit (no body)", bodyLimit(), () => get());
bench(
  "cors (allowed origin)",
  cors({ origins: ["https://shop.example"] }),
  () => get({ origin: "https://shop.example" }),
);
bench("securityHeaders", securityHeaders(), () => get());
let t = 0;
bench(
  "rateLimit (one key, never empty)",
  rateLimit({ key: () => "k", capacity: 1e9, refillPerSec: 1e9, store: new MemoryRateLimitStore(), now: () => t++ }),
  () => get(),
);
bench("tracing (new trace)", tracing(), () => get());
bench("tracing (incoming traceparent)", tracing(), () => get({ traceparent: TRACEPARENT }));
bench("tracing inside requestContext", chain(requestContext(), tracing()) as unknown as Middleware, () => get());
bench("requestContext alone", requestContext(), () => get());

bench("baseline, body read", undefined, post, true, "POST");
bench("bodyLimit, body read (chunked: counted)", bodyLimit(), post, true, "POST");
bench("baseline, body read, Content-Length", undefined, postWithLength, true, "POST+CL");
bench("bodyLimit, body read (Content-Length: trusted)", bodyLimit(), postWithLength, true, "POST+CL");
