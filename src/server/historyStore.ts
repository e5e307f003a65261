/**
 * The stable history of every group, in the log files' segments
 * (storage/segmentStore.ts), one JSON line per message:
 *
 *   {"ts":42,"sender":3,"user":"alice","text":"hello"}
 *
 * Stable messages are appended once, in the total order, so each group's
 * stream is sorted by (ts, sender) and a message is found by its id with a
 * binary search. The chat state keeps only how many of a group's messages
 * are stored (chat/model.ts); clients read the rest from here.
 */
import { compareOrder, type MessageId } from '../broadcast/types.js';
import type { FileSystem } from '../storage/fileSystem.js';
import { SegmentStore, type RecordCodec } from '../storage/segmentStore.js';
import type { ChatMessage } from '../chat/tail.js';
import { jsonString } from '../jsonText.js';

/** What the queries read of the stored history (groupQueries.ts). */
export interface StoredHistory {
  /** Messages from .. to-1 of a group's stored history. */
  read(group: string, from: number, to: number): ChatMessage[];
  /** The message with this id among the first `limit` stored in the group, with its index. */
  find(group: string, id: MessageId, limit: number): { index: number; message: ChatMessage } | undefined;
}

/** Where the history is kept: a data directory (the inspector only reads it). */
export interface HistoryFiles {
  readonly fs: FileSystem;
  readonly dir: string;
  readonly readOnly?: boolean;
  /** Messages per segment file (the simulator uses small ones, to cross many). */
  readonly segmentMessages?: number;
  /** Messages buffered before they are written to the files, unsynced (the simulator writes often, so that crashes tear them). */
  readonly bufferMessages?: number;
}

export const messageCodec: RecordCodec<ChatMessage> = {
  // Written field by field: no object is made for each line (a catch-up stores tens of thousands a second).
  encode: (m) => `{"ts":${m.ts},"sender":${m.sender},"user":${jsonString(m.user)},"text":${jsonString(m.text)}}`,
  decode: (line) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return undefined;
    }
    const v = value as Partial<ChatMessage> | null;
    if (typeof v !== 'object' || v === null) return undefined;
    if (!Number.isSafeInteger(v.ts) || !Number.isSafeInteger(v.sender) || typeof v.user !== 'string' || typeof v.text !== 'string') return undefined;
    return { ts: v.ts!, sender: v.sender!, user: v.user, text: v.text };
  },
};

export class HistoryStore implements StoredHistory {
  private constructor(private readonly segments: SegmentStore<ChatMessage>) {}

  /** Open the history at the counts of the snapshot (group -> messages stored), cutting off what lies past them. */
  static open(files: HistoryFiles, counts: ReadonlyMap<string, number>): HistoryStore {
    const { fs, dir, readOnly, segmentMessages, bufferMessages } = files;
    return new HistoryStore(SegmentStore.open({ fs, dir, codec: messageCodec, counts, readOnly, segmentRecords: segmentMessages, flushRecords: bufferMessages }));
  }

  count(group: string): number {
    return this.segments.count(group);
  }

  /** Append a newly stable message of a group. */
  append(group: string, message: ChatMessage): void {
    this.segments.append(group, message);
  }

  read(group: string, from: number, to: number): ChatMessage[] {
    return this.segments.read(group, from, to);
  }

  find(group: string, id: MessageId, limit: number): { index: number; message: ChatMessage } | undefined {
    const found = this.segments.find(group, (m) => compareOrder(m, id), limit);
    return found && { index: found.index, message: found.record };
  }

  /** Make every message appended so far durable (before a snapshot counts it). */
  sync(): void {
    this.segments.sync();
  }

  /** Write what is buffered to the files (not durable yet). Throws a STORAGE_FAILED ChorusError. */
  flush(): void {
    this.segments.flushNow();
  }

  /** Make every message flushed so far durable off the event loop; `ready` runs once it is, or with the error. */
  syncInBackground(ready: (error?: Error) => void): void {
    this.segments.syncInBackground(ready);
  }
}
