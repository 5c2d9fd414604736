import type { Message } from "../message.ts";
import type { DeadLetterStore, StoredLetter } from "./dead_letter_store.ts";

/** A topic log of the in-memory broker: `log[0]` is at offset `base`. */
export interface MemoryTopicLog {
  readonly base: number;
  readonly log: readonly Message[];
}

/**
 * The in-memory broker's {@linkcode DeadLetterStore}: a letter's ref is its log offset, and a removed letter is put in
 * `removed`, which the broker also skips when it delivers (so a consumer group that has not reached it yet never
 * gets it, as on JetStream).
 */
export function memoryDeadLetterStore(
  logOf: (topic: string) => MemoryTopicLog | undefined,
  removed: WeakSet<Message>,
): DeadLetterStore {
  const at = (topic: string, offset: number): Message | undefined => {
    const t = logOf(topic);
    if (!t || !Number.isInteger(offset) || offset < t.base) return undefined;
    const msg = t.log[offset - t.base];
    return msg && !removed.has(msg) ? msg : undefined;
  };
  const stored = (offset: number, msg: Message): StoredLetter => ({
    ref: String(offset),
    message: { ...msg, headers: { ...msg.headers }, payload: msg.payload.slice(), respond: undefined },
  });
  return {
    async *scan(topic, signal) {
      const t = logOf(topic);
      if (!t) return;
      const end = t.base + t.log.length;
      for (let offset = t.base; offset < end && !signal?.aborted; offset++) {
        const msg = at(topic, offset);
        if (msg) yield stored(offset, msg);
      }
    },
    get(topic, ref) {
      const offset = /^\d+$/.test(ref) ? Number(ref) : NaN;
      const msg = at(topic, offset);
      return Promise.resolve(msg && stored(offset, msg));
    },
    remove(topic, refs) {
      let n = 0;
      for (const ref of refs) {
        const msg = /^\d+$/.test(ref) ? at(topic, Number(ref)) : undefined;
        if (msg) {
          removed.add(msg);
          n++;
        }
      }
      return Promise.resolve(n);
    },
  };
}
