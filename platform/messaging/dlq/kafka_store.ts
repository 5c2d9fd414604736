import type { DriverSink, FetchedRecord, KafkaClient } from "../adapters/kafka/driver.ts";
import { KafkaMessageHeaders } from "../adapters/kafka/settings.ts";
import type { DeadLetterStore, StoredLetter } from "./dead_letter_store.ts";

/**
 * Options for {@linkcode kafkaDeadLetterStore}.
 */
export interface KafkaDeadLetterStoreOptions {
  /** Longest one read of a dead-letter topic may take (joining the group and fetching to the end). @default {30000} */
  readTimeoutMs?: number;
}

/**
 * The Kafka adapters' {@linkcode DeadLetterStore}. A Kafka topic is append-only (a single record cannot be deleted,
 * `deleteRecords` only cuts a partition's head), so removing a letter appends a *handled marker* instead: a record
 * keyed by the letter's ref (`<partition>-<offset>`) on the companion topic `<topic>.handled`, created on first use.
 *
 * A read joins a fresh consumer group (`trellis-dlq-ops.<uuid>`, committing nothing, so the broker forgets it once it
 * left), reads the dead-letter topic and its marker topic from the earliest retained offset to the end offsets it
 * asked for first, and yields the letters no marker names, by partition then offset.
 *
 * Trade-offs: each operation reads both topics whole (bounded by their retention, so keep the DLQ's retention
 * finite); a removed letter still takes space until retention drops it; markers outlive their letters until their own
 * retention drops them (give `<topic>.handled` a retention at least the DLQ's, or compaction). Recreating a
 * dead-letter topic without its marker topic would let old markers hide new letters at the same offsets.
 * Other consumers of the DLQ topic (such as the `redrive()` middleware tool) do not see the markers.
 */
export function kafkaDeadLetterStore(client: KafkaClient, options: KafkaDeadLetterStoreOptions = {}): DeadLetterStore {
  const readTimeoutMs = options.readTimeoutMs ?? 30_000;
  const markersOf = (topic: string) => `${topic}.handled`;
  const ensured = new Map<string, Promise<void>>();
  const ensureMarkers = (topic: string) => {
    let p = ensured.get(topic);
    if (!p) {
      p = client.ensureTopics([markersOf(topic)], 1, 1);
      ensured.set(topic, p);
      p.catch(() => ensured.delete(topic));
    }
    return p;
  };

  /**
   * Every retained record of `topics` up to the end offsets at the call, in fetch order; nothing at all when the first
   * topic retains nothing (no group is joined then: an empty dead-letter topic, the usual case, costs two requests).
   */
  const readAll = async (topics: string[], signal?: AbortSignal): Promise<FetchedRecord[]> => {
    const highs = new Map<string, bigint>();
    for (const topic of topics) {
      for (const p of await client.offsets(topic)) if (p.high > p.low) highs.set(`${topic}/${p.partition}`, p.high);
      if (highs.size === 0) return [];
    }
    const unfinished = new Set(highs.keys());
    const records = new Map<string, FetchedRecord>();
    const done = Promise.withResolvers<void>();
    const sink: DriverSink<FetchedRecord> = {
      receive(record) {
        const partition = `${record.topic}/${record.partition}`;
        const high = highs.get(partition);
        if (high === undefined || record.offset >= high) return;
        records.set(`${partition}/${record.offset}`, record);
        if (record.offset === high - 1n && unfinished.delete(partition) && unfinished.size === 0) done.resolve();
      },
      assigned() {},
      rebalancing() {},
      fail: (err) => done.reject(err),
      byteRoom: () => Number.MAX_SAFE_INTEGER,
    };
    const driver = client.consumer(`trellis-dlq-ops.${crypto.randomUUID()}`, sink);
    const timeout = AbortSignal.timeout(readTimeoutMs);
    const stop = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const stopped = Promise.withResolvers<never>();
    const onStop = () =>
      stopped.reject(
        stop.reason instanceof DOMException && stop.reason.name === "TimeoutError" && !signal?.aborted
          ? new Error(`Cannot read ${topics.join(", ")} to its end within ${readTimeoutMs} ms`)
          : stop.reason,
      );
    stop.addEventListener("abort", onStop, { once: true });
    try {
      if (stop.aborted) onStop();
      await Promise.race([Promise.all([driver.start(topics), done.promise]), stopped.promise]);
    } finally {
      stop.removeEventListener("abort", onStop);
      stopped.promise.catch(() => {});
      done.promise.catch(() => {});
      await driver.stop();
    }
    return [...records.values()];
  };

  const letters = async (topic: string, signal?: AbortSignal): Promise<StoredLetter[]> => {
    if (!(await client.listTopics()).includes(topic)) return [];
    await ensureMarkers(topic);
    const records = await readAll([topic, markersOf(topic)], signal);
    const handled = new Set<string>();
    for (const r of records) if (r.topic !== topic && r.message.key !== undefined) handled.add(r.message.key);
    return records
      .filter((r) => r.topic === topic)
      .sort((a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0))
      .map((r) => ({
        ref: `${r.partition}-${r.offset}`,
        message: { ...r.message, headers: { ...r.message.headers }, payload: r.message.payload.slice(), attempt: 1 },
      }))
      .filter((l) => !handled.has(l.ref));
  };

  return {
    async *scan(topic, signal) {
      for (const letter of await letters(topic, signal)) {
        if (signal?.aborted) return;
        yield letter;
      }
    },
    async get(topic, ref, signal) {
      if (!REF.test(ref)) return undefined;
      return (await letters(topic, signal)).find((l) => l.ref === ref);
    },
    async remove(topic, refs) {
      const valid = refs.filter((ref) => REF.test(ref));
      if (valid.length === 0) return 0;
      await ensureMarkers(topic);
      for (const ref of valid) {
        await client.send(markersOf(topic), ref, new Uint8Array(), { [KafkaMessageHeaders.id]: crypto.randomUUID() });
      }
      return valid.length;
    },
  };
}

const REF = /^\d+-\d+$/;
