/**
 * A group's history: its messages in total order (so sorted by (ts, sender)),
 * in chunks of at most `chunkMessages`.
 *
 * Immutable once the batch of operations that made it is over. Within one
 * batch (one `Edit`) the chunks and chunk list that batch copied are changed
 * in place, so a batch copies each chunk it touches once and the chunk list
 * once, whatever the number of operations: appends cost what they add, not
 * what the history holds. (immer would copy as little, but walks every
 * element of what it copied; the chat state keeps histories as values immer
 * does not draft.)
 */
import { compareOrder, type MessageId } from '../broadcast/types.js';

/**
 * A message of a group. Its id is the (ts, sender) of the broadcast message
 * that appended it, so it is a MessageId itself: its place in the total
 * order; `sender` is the server it was appended through.
 */
export interface ChatMessage extends MessageId {
  readonly user: string;
  readonly text: string;
  /** Users who like it, in the order they did. */
  readonly likes: readonly string[];
}

/** Messages per chunk: bounds what a batch copies to change one message. */
export const chunkMessages = 256;

/** One batch of operations: what it copied, it may change in place until it is over. */
export class Edit {}

/** The history as JSON holds it (snapshots, digests). */
export interface HistoryJson {
  readonly chunks: readonly (readonly ChatMessage[])[];
  readonly count: number;
}

export class History {
  static readonly empty = new History([], 0, undefined);

  /** Chunks copied by `owner` (indexes into `chunks`): those it may change in place. */
  private readonly ownChunks = new Set<number>();

  private constructor(
    private readonly chunks: ChatMessage[][],
    private size: number,
    private readonly owner: Edit | undefined,
  ) {}

  static fromJson(json: HistoryJson): History {
    return new History(
      json.chunks.map((chunk) => [...chunk]),
      json.count,
      undefined,
    );
  }

  get count(): number {
    return this.size;
  }

  toJSON(): HistoryJson {
    return { chunks: this.chunks, count: this.size };
  }

  /** The history with `message` (later in the order than every message here) at the end. */
  appended(message: ChatMessage, edit: Edit): History {
    const history = this.editable(edit);
    const lastIndex = history.chunks.length - 1;
    if (lastIndex >= 0 && history.chunks[lastIndex].length < chunkMessages) history.chunk(lastIndex).push(message);
    else {
      history.chunks.push([message]);
      history.ownChunks.add(lastIndex + 1);
    }
    history.size++;
    return history;
  }

  /** The history with the message `id` replaced by `change(message)`; this one if there is no such message. */
  changed(id: MessageId, change: (message: ChatMessage) => ChatMessage, edit: Edit): History {
    const at = this.locate(id);
    if (!at) return this;
    const history = this.editable(edit);
    const chunk = history.chunk(at.chunk);
    chunk[at.index] = change(chunk[at.index]);
    return history;
  }

  /** The message with this id: a binary search over the chunks, then within one. */
  find(id: MessageId): ChatMessage | undefined {
    const at = this.locate(id);
    return at && this.chunks[at.chunk][at.index];
  }

  /** The last `count` messages with their 1-based place in the history. */
  last(count: number): { n: number; message: ChatMessage }[] {
    const out: { n: number; message: ChatMessage }[] = [];
    let n = this.size;
    for (let c = this.chunks.length - 1; c >= 0 && out.length < count; c--) {
      const chunk = this.chunks[c];
      for (let i = chunk.length - 1; i >= 0 && out.length < count; i--) out.push({ n: n--, message: chunk[i] });
    }
    return out.reverse();
  }

  /** Every message, in order. */
  all(): ChatMessage[] {
    return this.chunks.flat();
  }

  private locate(id: MessageId): { chunk: number; index: number } | undefined {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = this.chunks[mid];
      if (compareOrder(id, chunk[0]) < 0) hi = mid - 1;
      else if (compareOrder(id, chunk[chunk.length - 1]) > 0) lo = mid + 1;
      else {
        const index = indexIn(chunk, id);
        return index === undefined ? undefined : { chunk: mid, index };
      }
    }
    return undefined;
  }

  /** This history if `edit` made it, else a copy of the chunk list that `edit` owns. */
  private editable(edit: Edit): History {
    return this.owner === edit ? this : new History([...this.chunks], this.size, edit);
  }

  /** Chunk `index`, copied first unless this history's edit already did. */
  private chunk(index: number): ChatMessage[] {
    if (!this.ownChunks.has(index)) {
      this.chunks[index] = [...this.chunks[index]];
      this.ownChunks.add(index);
    }
    return this.chunks[index];
  }
}

function indexIn(chunk: readonly MessageId[], id: MessageId): number | undefined {
  let lo = 0;
  let hi = chunk.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const order = compareOrder(id, chunk[mid]);
    if (order === 0) return mid;
    if (order < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return undefined;
}
