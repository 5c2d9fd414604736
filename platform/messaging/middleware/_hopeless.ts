/**
 * Whether `err` says no retry can help (`retryable: false`, as a `SchemaError` does): the retry middleware stops and
 * the dead-letter middleware parks the message at once.
 */
export function isHopeless(err: unknown): boolean {
  return (err as { retryable?: unknown } | null)?.retryable === false;
}
