/**
 * Whether `err` says no retry can help (`retryable: false`, as a `SchemaError` does): the retry middleware stops and
 * the dead-letter middleware parks the message at once.
 */
export function isHopeless(err: unknown): boolean {
  return (err as { retryable?: unknown } | null)?.retryable === false;
}

/**
 * Whether `err` says a dependency is down rather than that the message is bad (`transient: true`, as a
 * `DatabaseUnavailableError` does): the dead-letter middleware never parks a message for such a failure, so an outage
 * of a database does not empty a topic into its dead-letter queue; the message is delivered again until the
 * dependency is back.
 */
export function isTransient(err: unknown): boolean {
  return (err as { transient?: unknown } | null)?.transient === true;
}
