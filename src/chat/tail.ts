/**
 * A group's unstored tail: the messages of its history not (yet) in the
 * history store (server/historyStore.ts): the tentative ones and the stable ones since the last compaction, in total
 * order (so sorted by (ts, sender)), in chunks of at most `chunkMessages`.
 *
 * Immutable once the batch of operations that made it is over. Within one
 * batch (one `Edit`) the chunks and chunk list that batch copied are changed
 * in place, so a batch copies each chunk it touches once and the chunk list
 * once, whatever the number of operations: appends cost what they add, not
 * what the tail holds. (immer would copy as little, but walks every element
 * of what it copied; the chat state keeps tails as values immer does not
 * draft.) Every chunk but the first and the last is full, so a message's
 * index is found from its chunk.
 */
import { compareOrder, type MessageId } from '../broadcast/types.js';
import type { Edit } from './edit.js';

/**
 * A message of a group. Its id is the (ts, sender) of the broadcast message
 * that appended it, so it is a MessageId itself: its place in the total
 * order; `sender` is the server it was appended through. Its likes are kept
 * apart (likes.ts), since they change after the message is stored.
 */
export interface ChatMessage extends MessageId {
  readonly user: string;
  readonly text: string;
}

/** Messages per chunk: bounds what a batch copies. */
export const chunkMessages = 256;

export class Tail {
  static readonly empty = new Tail([], 0, undefined);

  /** Chunks copied by `owner` (indexes into `chunks`): those it may change in place. */
  private readonly ownChunks = new Set<number>();

  private constructor(
    private readonly chunks: ChatMessage[][],
    private size: number,
    private readonly owner: Edit | undefined,
  ) {}

  /** A tail holding these messages (in order). */
  static of(messages: readonly ChatMessage[]): Tail {
    const chunks: ChatMessage[][] = [];
    for (let i = 0; i < messages.length; i += chunkMessages) chunks.push(messages.slice(i, i + chunkMessages));
    return new Tail(chunks, messages.length, undefined);
  }

  get count(): number {
    return this.size;
  }

  /** Snapshots hold a tail as its list of messages. */
  toJSON(): ChatMessage[] {
    return this.all();
  }

  /** The tail with `message` (later in the order than every message here) at the end. */
  appended(message: ChatMessage, edit: Edit): Tail {
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

  /** The tail without its first `count` messages (moved to the history store). */
  withoutFirst(count: number): Tail {
    if (count <= 0) return this;
    if (count >= this.size) return Tail.empty;
    let dropped = 0;
    let c = 0;
    while (dropped + this.chunks[c].length <= count) dropped += this.chunks[c++].length;
    const chunks = this.chunks.slice(c);
    if (dropped < count) chunks[0] = chunks[0].slice(count - dropped);
    return new Tail(chunks, this.size - count, undefined);
  }

  /**
   * How many first messages this tail and `other` have in common. Tails of
   * one group share their unchanged chunks (each batch copies only what it
   * touches), so shared chunks are skipped whole: the cost is that of what
   * differs, not of the tail.
   */
  commonPrefix(other: Tail): number {
    let count = 0;
    let [ca, ia, cb, ib] = [0, 0, 0, 0];
    while (ca < this.chunks.length && cb < other.chunks.length) {
      const a = this.chunks[ca];
      const b = other.chunks[cb];
      if (a === b && ia === 0 && ib === 0) {
        count += a.length;
        ca++;
        cb++;
        continue;
      }
      if (compareOrder(a[ia], b[ib]) !== 0) return count;
      count++;
      if (++ia === a.length) [ca, ia] = [ca + 1, 0];
      if (++ib === b.length) [cb, ib] = [cb + 1, 0];
    }
    return count;
  }

  /** The message with this id and its index here: a binary search over the chunks, then within one. */
  find(id: MessageId): { index: number; message: ChatMessage } | undefined {
    let lo = 0;
    let hi = this.chunks.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const chunk = this.chunks[mid];
      if (compareOrder(id, chunk[0]) < 0) hi = mid - 1;
      else if (compareOrder(id, chunk[chunk.length - 1]) > 0) lo = mid + 1;
      else {
        const index = indexIn(chunk, id);
        return index === undefined ? undefined : { index: this.startOf(mid) + index, message: chunk[index] };
      }
    }
    return undefined;
  }

  /** How many messages come at or before `id` in the order: a binary search over the chunks, then within one. */
  countUpTo(id: MessageId): number {
    const chunks = countWhile(this.chunks.length, (c) => compareOrder(this.chunks[c][0], id) <= 0);
    if (chunks === 0) return 0;
    const chunk = this.chunks[chunks - 1];
    return this.startOf(chunks - 1) + countWhile(chunk.length, (i) => compareOrder(chunk[i], id) <= 0);
  }

  /** The first message, if any. */
  first(): ChatMessage | undefined {
    return this.chunks[0]?.[0];
  }

  /** Messages from .. to-1 (indexes here). */
  slice(from: number, to: number): ChatMessage[] {
    const out: ChatMessage[] = [];
    const end = Math.min(to, this.size);
    for (let i = Math.max(0, from); i < end; ) {
      const c = this.chunkAt(i);
      const start = this.startOf(c);
      const chunk = this.chunks[c];
      for (let k = i - start; k < chunk.length && start + k < end; k++) out.push(chunk[k]);
      i = start + chunk.length;
    }
    return out;
  }

  /** Every message, in order. */
  all(): ChatMessage[] {
    return this.chunks.flat();
  }

  /** Index of chunk c's first message. */
  private startOf(c: number): number {
    if (c === 0) return 0;
    return this.chunks[0].length + (c - 1) * chunkMessages;
  }

  /** The chunk holding message i. */
  private chunkAt(i: number): number {
    const first = this.chunks[0].length;
    return i < first ? 0 : 1 + Math.floor((i - first) / chunkMessages);
  }

  /** This history if `edit` made it, else a copy of the chunk list that `edit` owns. */
  private editable(edit: Edit): Tail {
    return this.owner === edit ? this : new Tail([...this.chunks], this.size, edit);
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

/** How many of the first indexes 0..n-1 pass `test`, which holds for a prefix of them: a binary search. */
function countWhile(n: number, test: (i: number) => boolean): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (test(mid)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
