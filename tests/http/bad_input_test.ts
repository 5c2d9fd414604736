import assert from "node:assert/strict";
import { embeddedSystem } from "../support/system.ts";

/**
 * Throws thousands of generated malformed requests at a running gateway (half of them with a valid user token) and
 * checks that it never answers 5xx, that every 4xx is RFC 9457 problem+json whose `status` matches, that every
 * service still answers `/healthz` afterwards, and that memory comes back near where it started.
 *
 * Reproduce a failing run with `FUZZ_SEED=<seed printed by the failing run>`; `FUZZ_COUNT` changes the number of
 * requests. Run with `--v8-flags=--expose-gc` for a tight memory bound; without it the bound is loose.
 */

const COUNT = Number(Deno.env.get("FUZZ_COUNT") ?? 5_000);
const CONCURRENCY = 16;

/** mulberry32: small, fast and good enough to make the corpus reproducible from one 32-bit seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const bytes = (n: number) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = int(256);
    return out;
  };
  /** Printable ASCII plus Latin-1, the only characters a header value may carry. */
  const headerText = (n: number) =>
    Array.from({ length: n }, () => String.fromCharCode(next() < 0.8 ? 0x21 + int(94) : 0xa1 + int(95))).join("");
  return { next, int, pick, bytes, headerText };
}
type Rng = ReturnType<typeof prng>;

/** One generated request. `body` bytes, so fetch adds no content type of its own. */
interface Case {
  kind: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array<ArrayBuffer>;
}

const enc = (s: string) => new TextEncoder().encode(s);
const ROUTES = ["/v1/orders", "/v1/orders/o-1", "/v1/orders/o-1/receipt", "/v1/products"] as const;
const CONTENT_TYPES = [
  undefined,
  "",
  "application/json",
  "application/json; charset=utf-8",
  "APPLICATION/JSON",
  "application/problem+json",
  "application/vnd.x+json",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/octet-stream",
  "application/json;;;;",
  "json",
  ";",
  "application/",
  "/json",
  "application/json; charset=latin1",
  "*/*",
];

function nested(depth: number, rng: Rng): string {
  const [open, close] = rng.pick([["[", "]"], ['{"a":', "}"], ['{"items":[', "]}"]]);
  return open.repeat(depth) + "1" + close.repeat(depth);
}

const GENERATORS: Record<string, (rng: Rng) => Omit<Case, "kind">> = {
  randomBytes: (rng) => ({
    method: "POST",
    path: "/v1/orders",
    headers: { "content-type": rng.pick(CONTENT_TYPES) ?? "application/json" },
    body: rng.bytes(rng.int(4096)),
  }),
  contentType: (rng) => {
    const ct = rng.pick(CONTENT_TYPES);
    return {
      method: rng.pick(["POST", "PUT", "PATCH"]),
      path: rng.pick(ROUTES),
      headers: ct === undefined ? {} as Record<string, string> : { "content-type": ct },
      body: enc(JSON.stringify({ items: [{ sku: "kettle", quantity: 0 }] })),
    };
  },
  invalidJson: (rng) => ({
    method: "POST",
    path: "/v1/orders",
    headers: { "content-type": "application/json" },
    body: enc(rng.pick([
      "",
      "{",
      "}",
      "[1,]",
      '{"items":[{"sku":"kettle","quantity":1},]}',
      "NaN",
      "undefined",
      "{'items':[]}",
      '{"items": [}',
      '"\\ud800"',
      '{"__proto__":{"polluted":true},"items":[]}',
      '{"constructor":{"prototype":{"x":1}}}',
      "null",
      "true",
      "[]",
      '"string"',
      '{"items":null,"paymentToken":null}',
      '{"items":[null,1,"x",[],{}]}',
      '{"items":"kettle"}',
      `{"items":[{"sku":"${"a".repeat(5000)}","quantity":1}]}`,
      `{"items":${JSON.stringify(Array.from({ length: 500 }, () => ({ sku: "kettle", quantity: 1 })))}}`,
      '{"a":1,"a":2}',
      "\ufeff{}",
      " \t\r\n",
    ])),
  }),
  deepJson: (rng) => ({
    method: "POST",
    path: "/v1/orders",
    headers: { "content-type": "application/json" },
    body: enc(nested(rng.pick([100, 1_000, 10_000, 20_000]), rng)),
  }),
  hugeNumbers: (rng) => ({
    method: "POST",
    path: "/v1/orders",
    headers: { "content-type": "application/json" },
    body: enc(
      `{"items":[{"sku":"kettle","quantity":${
        rng.pick([
          "1e309",
          "-1e309",
          "99999999999999999999999999999",
          "9007199254740993",
          "-0",
          "1.5",
          "0.0000000000000000001",
          "1".repeat(2000),
          "1e-400",
          "-1",
          "0",
          "10001",
          "1E5",
        ])
      }}]}`,
    ),
  }),
  invalidUtf8: (rng) => {
    const bad = rng.pick([[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82]]);
    const prefix = enc('{"items":[{"sku":"');
    const suffix = enc('","quantity":1}]}');
    return {
      method: "POST",
      path: "/v1/orders",
      headers: { "content-type": "application/json" },
      body: new Uint8Array([...prefix, ...bad, ...suffix]),
    };
  },
  bigHeader: (rng) => ({
    method: rng.pick(["GET", "POST"]),
    path: rng.pick(ROUTES),
    headers: {
      [rng.pick(["x-filler", "idempotency-key", "x-request-id", "traceparent", "x-deadline-ms"])]: "a".repeat(
        rng.pick([8 * 1024, 16 * 1024, 64 * 1024]),
      ),
    },
  }),
  bigBody: (rng) => ({
    method: "POST",
    path: rng.pick(["/v1/orders", "/v1/orders", "/v1/products", "/nowhere"]),
    headers: { "content-type": "application/json" },
    body: enc(`{"items":[],"pad":"${"x".repeat(rng.pick([70 * 1024, 2 * 1024 * 1024]))}"}`),
  }),
  absurdPath: (rng) => ({
    method: rng.pick(["GET", "GET", "POST", "DELETE"]),
    path: rng.pick([
      () => "/v1/orders/" + "a".repeat(rng.pick([200, 5_000, 30_000])),
      () => "/v1/orders/%",
      () => "/v1/orders/%zz%",
      () => "/v1/orders/%E0%A4%A",
      () => "/v1/orders/%00",
      () => "/v1/orders/a%00b/receipt",
      () => "/v1/orders/%C0%80",
      () => "/v1/orders/%FF%FE",
      () => "/v1/orders/%ED%A0%80",
      () => "/v1/orders/..%2F..%2Fetc%2Fpasswd",
      () => "/v1/orders/%2e%2e/%2e%2e/receipt",
      () => "/v1/orders/%252e%252e%252f/receipt",
      () => "/v1/orders/🦕/receipt",
      () => "/v1/orders/\u202e\u0000\uffff",
      () => "/v1/orders/" + encodeURIComponent(rng.headerText(40)),
      () => "//v1//orders//",
      () => "/v1/orders/o-1/receipt/extra",
      () => "/v1/orders?" + "q=%".repeat(100),
      () => "/v1/products?skus=" + "%ZZ".repeat(50),
      () => "/" + "../".repeat(50) + "etc/passwd",
      () => "/v1/" + "x/".repeat(2000),
      () => "/v1/orders/" + "%".repeat(300),
      () => "/v1/orders/%u0000",
      () => "/v1/orders/\\..\\..\\",
    ])(),
    headers: {},
  }),
  oddMethod: (rng) => ({
    method: rng.pick(["PATCH", "OPTIONS", "PROPFIND", "MKCOL", "FOO", "get", "Post", "LOCK", "X".repeat(100)]),
    path: rng.pick(ROUTES),
    headers: {},
  }),
  idempotencyKey: (rng) => ({
    method: "POST",
    path: "/v1/orders",
    headers: {
      "content-type": "application/json",
      "idempotency-key": rng.pick([
        () => "x".repeat(129),
        () => "x".repeat(10_000),
        () => "with space",
        () => "tab\there",
        () => "é-latin1",
        () => rng.headerText(rng.int(200) + 1),
        () => ",;\"'",
      ])(),
    },
    body: enc(JSON.stringify({ items: [{ sku: "kettle", quantity: -1 }] })),
  }),
  authorization: (rng) => ({
    method: rng.pick(["GET", "POST"]),
    path: rng.pick(ROUTES),
    headers: {
      authorization: rng.pick([
        () => "Bearer",
        () => "Bearer ",
        () => "bearer x",
        () => "Bearer a.b.c",
        () => "Bearer ..",
        () => "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.",
        () => "Basic " + btoa("alice:wonderland"),
        () => "Bearer " + "A".repeat(rng.pick([1_000, 16_000])),
        () => "Bearer " + rng.headerText(60),
        () => rng.headerText(30),
        () => "Bearer x, Bearer y",
        () => "Digest username=alice",
        () => "Bearer " + btoa(rng.headerText(30)) + "." + btoa("{}") + "." + "sig",
      ])(),
    },
  }),
};

function generate(rng: Rng, token: string): Case {
  const kind = rng.pick(Object.keys(GENERATORS));
  const c = { kind, ...GENERATORS[kind](rng) };
  if (kind !== "authorization" && rng.next() < 0.5) c.headers = { authorization: `Bearer ${token}`, ...c.headers };
  return c;
}

interface Outcome {
  status: number | "network-error";
  problem?: string;
  /** Whether the response is the bare one Deno's HTTP parser sends before any application code runs. */
  bare?: boolean;
}

/**
 * Deno's HTTP/1.1 server (hyper) refuses a header section over about 64 KiB with a bare 400 before the request
 * reaches any handler, and `Deno.serve` has no option to change that or its body; such answers are counted apart
 * instead of being held to the problem+json rule.
 */
const PARSER_HEADER_LIMIT = 60 * 1024;
const headerBytes = (c: Case) => Object.entries(c.headers).reduce((n, [k, v]) => n + k.length + v.length + 4, 0);

async function send(gateway: string, c: Case): Promise<Outcome> {
  let res: Response;
  try {
    res = await fetch(gateway + c.path, {
      method: c.method,
      headers: c.headers,
      body: c.body,
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    return { status: "network-error", problem: String(err) };
  }
  const text = await res.text();
  if (res.status < 400) return { status: res.status };
  const bare = text === "" && !res.headers.has("content-type");
  return { status: res.status, problem: problemViolation(res, text), bare };
}

/** Why a 4xx/5xx response is not RFC 9457 problem+json with a matching status, or `undefined` when it is. */
function problemViolation(res: Response, text: string): string | undefined {
  const type = res.headers.get("content-type");
  if (type?.split(";")[0].trim() !== "application/problem+json") return `content-type ${type}`;
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text);
  } catch {
    return `body is not JSON: ${text.slice(0, 100)}`;
  }
  if (typeof body.type !== "string" || typeof body.title !== "string") return `no type/title: ${text.slice(0, 200)}`;
  if (body.status !== res.status) return `body status ${body.status} != ${res.status}`;
  return undefined;
}

/** Malformed HTTP/1.1 framing, written on a raw socket: the server must answer 4xx or close, never 5xx or hang. */
const RAW_REQUESTS = [
  "GET /v1/products HTTP/1.1\r\n\r\n",
  "GARBAGE\r\n\r\n",
  "GET /v1/products HTTP/9.9\r\nHost: x\r\n\r\n",
  "GET /v1/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /v1/orders/\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
  "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "POST /v1/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n",
  "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
  "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
  "GET /v1/products HTTP/1.1\r\nHost: x\r\nno-colon-header\r\n\r\n",
  "TRACE /v1/products HTTP/1.1\r\nHost: x\r\n\r\n",
  "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET http://evil.example/v1/products HTTP/1.1\r\nHost: x\r\n\r\n",
  `GET /${"a".repeat(200_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  "G\x00ET /v1/products HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /v1/products HTTP/1.1\r\nHost: x\r\nX: \xff\xfe\r\n\r\n",
  // fetch refuses to send a DEL in a header value, so this one goes raw.
  "POST /v1/orders HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x7fb\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
];

async function sendRaw(port: number, raw: string): Promise<number | "closed"> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    // Latin-1 bytes, one per char, so the test controls every byte on the wire.
    await conn.write(Uint8Array.from(raw, (ch) => ch.charCodeAt(0) & 0xff)).catch(() => {});
    const buf = new Uint8Array(4096);
    const timer = setTimeout(() => conn.close(), 5_000);
    let n: number | null = null;
    try {
      n = await conn.read(buf);
    } catch {
      n = null;
    } finally {
      clearTimeout(timer);
    }
    if (!n) return "closed";
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(new TextDecoder().decode(buf.subarray(0, n)));
    assert.ok(m, `not an HTTP response to ${JSON.stringify(raw.slice(0, 60))}`);
    return Number(m[1]);
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed by the read timeout.
    }
  }
}

const gc = (globalThis as { gc?: () => void }).gc;

function memory(): { heapUsed: number; rss: number } {
  gc?.();
  gc?.();
  const { heapUsed, rss } = Deno.memoryUsage();
  return { heapUsed, rss };
}

Deno.test("the gateway answers thousands of malformed requests with 4xx problem+json and stays healthy", async () => {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? (Date.now() % 2 ** 32));
  console.log(`bad input fuzz: seed ${seed}, ${COUNT} requests, concurrency ${CONCURRENCY}`);
  await using env = await embeddedSystem({ env: { LOG_LEVEL: "error" } });
  const gateway = env.endpoints.gateway;
  const login = await fetch(`${env.endpoints.auth}/oauth/token`, {
    method: "POST",
    body: new URLSearchParams({ grant_type: "password", username: "alice", password: "wonderland" }),
  });
  assert.equal(login.status, 200);
  const token: string = (await login.json()).access_token;

  // Warm up every route first, so lazily built state is in the baseline and not counted as growth.
  for (const path of ROUTES) {
    await (await fetch(gateway + path, { headers: { authorization: `Bearer ${token}` } })).body?.cancel();
  }
  const before = memory();

  // Cases are generated as workers take them (synchronously, so in index order and reproducible) rather than up
  // front, which would keep every 2 MB body alive and swamp the memory measurement.
  const rng = prng(seed);
  const counts = new Map<string, number>();
  const byKind = new Map<string, Map<string, number>>();
  const failures: string[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < COUNT) {
      const i = next++;
      const c = generate(rng, token);
      const out = await send(gateway, c);
      const parser = out.bare === true && (out.status === 400 || out.status === 431) &&
        headerBytes(c) > PARSER_HEADER_LIMIT;
      if (parser) out.problem = undefined;
      const key = parser ? `${out.status} (http parser)` : String(out.status);
      counts.set(key, (counts.get(key) ?? 0) + 1);
      const kind = byKind.get(c.kind) ?? new Map<string, number>();
      kind.set(key, (kind.get(key) ?? 0) + 1);
      byKind.set(c.kind, kind);
      const bad = out.status === "network-error" || out.status >= 500 || out.problem !== undefined;
      if (bad && failures.length < 20) {
        failures.push(
          `#${i} ${c.kind} ${c.method} ${c.path.slice(0, 120)} ${
            JSON.stringify(Object.fromEntries(Object.entries(c.headers).map(([k, v]) => [k, v.slice(0, 80)])))
          } body=${c.body?.byteLength ?? 0}B -> ${out.status} ${out.problem?.slice(0, 300) ?? ""}`,
        );
      }
    }
  }));
  const ms = Math.round(performance.now() - started);

  const raw: Record<string, number> = {};
  for (const r of RAW_REQUESTS) {
    const status = await sendRaw(env.system.services.gateway.port, r);
    raw[status] = (raw[status] ?? 0) + 1;
    if (status !== "closed" && status >= 500) failures.push(`raw ${JSON.stringify(r.slice(0, 80))} -> ${status}`);
  }

  console.log(`statuses after ${ms} ms:`, Object.fromEntries([...counts].sort()));
  console.log("by kind:", Object.fromEntries([...byKind].map(([k, v]) => [k, Object.fromEntries([...v].sort())])));
  console.log("raw framing:", raw);
  assert.deepEqual(failures, [], `seed ${seed}: 5xx, network errors or non-problem 4xx`);

  for (const [name, svc] of Object.entries(env.system.services)) {
    const res = await fetch(`${svc.url}/healthz`);
    assert.equal(res.status, 200, `${name} /healthz after the fuzz run`);
    await res.body?.cancel();
  }
  const products = await fetch(gateway + "/v1/products", { headers: { authorization: `Bearer ${token}` } });
  assert.equal(products.status, 200, "the gateway still serves real requests");
  await products.body?.cancel();

  // Give closed connections and pending request bodies a moment to be released before measuring.
  await new Promise((r) => setTimeout(r, 200));
  const after = memory();
  const mb = (n: number) => Math.round(n / 2 ** 20);
  console.log(
    `memory (${gc ? "after gc" : "no gc exposed: loose bound"}): heap ${mb(before.heapUsed)} -> ${
      mb(after.heapUsed)
    } MB, rss ${mb(before.rss)} -> ${mb(after.rss)} MB`,
  );
  if (gc) assert.ok(after.heapUsed - before.heapUsed < 48 * 2 ** 20, "heap returns near its baseline");
  else assert.ok(after.rss - before.rss < 512 * 2 ** 20, "rss stays within a loose bound");
});
