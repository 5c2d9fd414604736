import { readUpTo, sizedResponse } from "./_bytes.ts";
import { HttpError } from "./problem.ts";

/**
 * Options for {@linkcode readJson}.
 *
 * @example Small bodies only
 * ```ts
 * import { readJson, type ReadJsonOptions } from "./json.ts";
 * const options: ReadJsonOptions = { maxBytes: 16 * 1024 };
 * const headers = { "content-type": "application/json" };
 * const req = new Request("http://api/", { method: "POST", body: '{"a":1}', headers });
 * await readJson(req, options); // { a: 1 }
 * ```
 */
export interface ReadJsonOptions {
  /** Largest accepted body in bytes. @default {1048576} */
  maxBytes?: number;
}

/**
 * Reads a JSON request body: wrong content type is 415, a body over `maxBytes` is 413, malformed JSON is 400 saying
 * where. The result is `unknown`: validate it before use.
 *
 * @example
 * ```ts
 * import { readJson } from "./json.ts";
 * const req = new Request("http://x/", { method: "POST", body: "{\"a\":1}", headers: { "content-type": "application/json" } });
 * const body = await readJson(req);
 * ```
 */
export async function readJson(req: Request, options: ReadJsonOptions = {}): Promise<unknown> {
  const maxBytes = options.maxBytes ?? 1 << 20;
  const type = req.headers.get("content-type") ?? "";
  const mediaType = type.split(";")[0].trim().toLowerCase();
  if (mediaType !== "application/json" && !/^application\/[a-z0-9.+-]*\+json$/.test(mediaType)) {
    throw new HttpError(415, "unsupported-media-type", "Unsupported media type", {
      detail: `expected content-type application/json, got ${JSON.stringify(type || "(none)")}`,
    });
  }
  const declared = Number(req.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  const bytes = await readUpTo(req.body, maxBytes);
  if (!bytes) throw tooLarge(maxBytes);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "malformed-json", "Malformed JSON", { detail: "body is not valid UTF-8" });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, "malformed-json", "Malformed JSON", {
      detail: `body is not valid JSON: ${(err as Error).message}`,
    });
  }
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, "payload-too-large", "Payload too large", { detail: `body exceeds ${maxBytes} bytes` });
}

/**
 * A JSON response.
 *
 * @example
 * ```ts
 * import { json } from "./json.ts";
 * const res = json({ ok: true }, 201);
 * ```
 */
export function json(body: unknown, status = 200, headers?: HeadersInit): Response {
  // The common case builds no Headers object of its own (copying one into the Response costs about 1 µs).
  if (headers === undefined) return sizedResponse(JSON.stringify(body), { status, headers: JSON_HEADERS });
  const h = new Headers(headers);
  h.set("content-type", "application/json");
  return sizedResponse(JSON.stringify(body), { status, headers: h });
}

const JSON_HEADERS = { "content-type": "application/json" };
