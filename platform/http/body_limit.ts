import type { Middleware } from "./handler.ts";
import { errorResponse, HttpError } from "./problem.ts";

/**
 * Options for {@linkcode bodyLimit}.
 *
 * @example Accept uploads up to 8 MiB
 * ```ts
 * import { bodyLimit, type BodyLimitOptions } from "./body_limit.ts";
 * const options: BodyLimitOptions = { maxBytes: 8 << 20 };
 * const limit = bodyLimit(options);
 * ```
 */
export interface BodyLimitOptions {
  /**
   * Largest request body accepted, in bytes.
   *
   * @example 1 MiB
   * ```ts
   * import { bodyLimit } from "./body_limit.ts";
   * bodyLimit({ maxBytes: 1 << 20 });
   * ```
   * @default {1048576}
   */
  maxBytes?: number;
}

/**
 * Caps request bodies. A `Content-Length` above `maxBytes` is answered 413 problem+json before the handler runs,
 * and one within it is trusted (`Deno.serve` ends the body at its declared length). A body without one (chunked)
 * is counted as the handler reads it, and the read fails with a 413
 * {@linkcode HttpError} as soon as the count passes `maxBytes`, which `recovery()` turns into the response. The
 * middleware never buffers the body: the handler still streams it.
 *
 * @example Reject bodies over 64 KiB
 * ```ts
 * import { bodyLimit } from "./body_limit.ts";
 * import { chain } from "./handler.ts";
 * import { recovery } from "./middleware.ts";
 * import { createLogger } from "../log/mod.ts";
 * const log = createLogger("demo", { write: () => {} });
 * const h = chain(recovery(log), bodyLimit({ maxBytes: 64 * 1024 }))(async (req) => new Response(await req.text()));
 * const res = await h(new Request("http://x/", { method: "POST", body: "x".repeat(100_000) }));
 * res.status; // 413
 * ```
 */
export function bodyLimit(options: BodyLimitOptions = {}): Middleware {
  const maxBytes = options.maxBytes ?? 1 << 20;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new RangeError(`Cannot limit request bodies to maxBytes: current value is ${maxBytes}`);
  }
  return (next) =>
    function bodyLimit(req) {
      if (req.body === null) return next(req);
      const declared = req.headers.get("content-length");
      if (declared !== null && DIGITS.test(declared)) {
        if (Number(declared) > maxBytes) return Promise.resolve(errorResponse(tooLarge(maxBytes)));
        // The server's framing stops the body at its Content-Length, so a valid one is a bound and counting would
        // only add a stream per request.
        return next(req);
      }
      return next(new Request(req, { body: limitStream(req.body, maxBytes), duplex: "half" } as RequestInit));
    };
}

const DIGITS = /^[0-9]{1,16}$/;

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, "payload-too-large", "Payload too large", { detail: `body exceeds ${maxBytes} bytes` });
}

function limitStream(body: ReadableStream<Uint8Array>, maxBytes: number): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let seen = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      seen += value.byteLength;
      if (seen > maxBytes) {
        const err = tooLarge(maxBytes);
        controller.error(err);
        // Stop the client's upload; its rejection only repeats what the handler already sees.
        await reader.cancel(err).catch(() => {});
        return;
      }
      controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
    // Nothing is read ahead of the handler: a body it never reads is never pulled.
  }, { highWaterMark: 0 });
}
