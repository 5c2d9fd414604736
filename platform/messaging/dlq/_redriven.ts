import { ContextHeaders } from "../../context/mod.ts";

/** `DeadLetterHeaders.redrives`, spelled out so that this module and the middleware's do not import each other. */
const REDRIVES = "dlq-redrives";

/**
 * The headers a redriven message goes back with: the `dlq-*` bookkeeping and `x-deadline-ms` (the original deadline
 * has long passed) removed, `dlq-redrives` incremented.
 */
export function redrivenHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (!k.startsWith("dlq-") && k !== ContextHeaders.deadline) out[k] = v;
  }
  const previous = Number(headers[REDRIVES]);
  out[REDRIVES] = String(Number.isInteger(previous) && previous > 0 ? previous + 1 : 1);
  return out;
}
