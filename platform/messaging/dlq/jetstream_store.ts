import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  type MsgRequest,
  type StoredMsg,
} from "@nats-io/jetstream";
import { decodeNatsMessage } from "../adapters/_nats.ts";
import type { DeadLetterStore, StoredLetter } from "./dead_letter_store.ts";

/**
 * The JetStream adapter's {@linkcode DeadLetterStore}, on the stream that holds the topic's subject: a letter's ref is
 * its stream sequence. `scan` reads message by message (`STREAM.MSG.GET` with `next_by_subj`, so deleted sequences
 * cost nothing) up to the last sequence when it started; `remove` deletes by sequence (`STREAM.MSG.DELETE`, no
 * erase). No consumer is made, so nothing is left on the server.
 */
export function jetStreamDeadLetterStore(jsm: JetStreamManager): DeadLetterStore {
  const streamOf = async (topic: string): Promise<string | undefined> => {
    try {
      return await jsm.streams.find(topic);
    } catch (err) {
      if (isCode(err, JetStreamApiCodes.StreamNotFound)) return undefined;
      throw err;
    }
  };
  const seqOf = (ref: string) => /^[1-9]\d*$/.test(ref) ? Number(ref) : undefined;
  return {
    async *scan(topic, signal) {
      const stream = await streamOf(topic);
      if (!stream) return;
      const { state } = await jsm.streams.info(stream);
      let seq = state.first_seq;
      while (seq <= state.last_seq && !signal?.aborted) {
        // `next_by_subj` is part of the server's MSG.GET request; nats.js types only the `seq` and `last_by_subj` forms.
        const query = { seq, next_by_subj: topic } as unknown as MsgRequest;
        const m = await jsm.streams.getMessage(stream, query);
        if (!m || m.seq > state.last_seq) return;
        yield stored(m);
        seq = m.seq + 1;
      }
    },
    async get(topic, ref) {
      const seq = seqOf(ref);
      const stream = seq === undefined ? undefined : await streamOf(topic);
      if (!stream) return undefined;
      const m = await jsm.streams.getMessage(stream, { seq: seq! });
      return m && m.subject === topic ? stored(m) : undefined;
    },
    async remove(topic, refs) {
      const stream = await streamOf(topic);
      if (!stream) return 0;
      let n = 0;
      for (const ref of refs) {
        const seq = seqOf(ref);
        if (seq === undefined) continue;
        try {
          if (await jsm.streams.deleteMessage(stream, seq, false)) n++;
        } catch (err) {
          if (!isCode(err, JetStreamApiCodes.NoMessageFound)) throw err;
        }
      }
      return n;
    },
  };
}

function stored(m: StoredMsg): StoredLetter {
  return { ref: String(m.seq), message: decodeNatsMessage(m.header, m.data, 1) };
}

function isCode(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}
