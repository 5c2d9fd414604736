/**
 * Reads a body whole unless it is larger than `maxBytes`: then cancels the rest and resolves `undefined`. Read
 * errors reject. Internal to platform/http.
 */
export async function readUpTo(
  body: ReadableStream<Uint8Array> | null,
  maxBytes: number,
): Promise<Uint8Array | undefined> {
  if (!body) return new Uint8Array();
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/**
 * Where the body-building helpers (`json()`, `problemResponse()`) note a response's body size in bytes, for the access
 * log: a `Response` cannot tell its body's size without being read. Internal to platform/http.
 */
export const BODY_BYTES: unique symbol = Symbol("trellis.http.bodyBytes");

/** A response that may carry its body size under {@linkcode BODY_BYTES}. */
export type SizedResponse = Response & { [BODY_BYTES]?: number };

/** A string body's response, with its UTF-8 size noted. Internal to platform/http. */
export function sizedResponse(body: string, init: ResponseInit): Response {
  const res: SizedResponse = new Response(body, init);
  res[BODY_BYTES] = utf8Length(body);
  return res;
}

/** The UTF-8 size of `s` without encoding it. */
export function utf8Length(s: string): number {
  // Most bodies are ASCII: one regex scan (fast in V8) instead of a loop over every character.
  if (!NON_ASCII.test(s)) return s.length;
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      // A surrogate pair: 4 bytes for its 2 UTF-16 units.
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2;
        i++;
      } else n += 2; // a lone surrogate is encoded as U+FFFD, 3 bytes
    } else n += 2;
  }
  return n;
}

const NON_ASCII = /[\u0080-\uffff]/;

/**
 * The body size of `res` in bytes when it is known without reading the body: noted by our helpers, or declared in
 * `Content-Length`; `undefined` for a stream of unknown length. What the access log reports as `bytes`.
 *
 * @example The size of a `json()` body, without reading it
 * ```ts
 * import { json, knownBodyBytes } from "./mod.ts";
 * knownBodyBytes(json({ pong: true })); // 13
 * knownBodyBytes(new Response(new ReadableStream())); // undefined
 * ```
 */
export function knownBodyBytes(res: Response): number | undefined {
  const noted = (res as SizedResponse)[BODY_BYTES];
  if (noted !== undefined) return noted;
  if (res.body === null) return 0;
  const declared = res.headers.get("content-length");
  return declared !== null && /^[0-9]{1,15}$/.test(declared) ? Number(declared) : undefined;
}
