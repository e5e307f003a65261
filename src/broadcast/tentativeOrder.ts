/**
 * The tentative suffix of the total order: messages accepted but not yet
 * stable, sorted by (ts, sender). Messages usually arrive in order and are
 * appended; late ones (concurrent senders, a heal, a catch-up) are appended
 * too and, when the log is next read, sorted among themselves and merged in
 * from where the earliest of them belongs: a step costs what it added and
 * what lies after it, never a sort of everything held. The stable prefix is
 * taken off the front as the stable point advances.
 *
 * Invariant: between two takeChange() calls, every position before the
 * reported `from` is unchanged, so a reader that mirrors the log (the chat
 * replica) stays identical to it by replacing its suffix from there.
 */
import { invariant, InvariantError } from '../errors.js';
import { compareOrder, type Message } from './types.js';

/** The tentative order changed: from position `from` (counted from its front after the last stable messages left) it is now `messages`. */
export interface OrderChange {
  readonly from: number;
  readonly messages: readonly Message[];
  /** The messages new to the order since the last change, in arrival order: each message is new in one change only (a reader that looks at every message once reads these, not the whole suffix). */
  readonly added: readonly Message[];
}

export class TentativeOrder {
  private items: Message[] = [];
  /** Index of the first message still held; the front is compacted lazily. */
  private head = 0;
  /** items[head, sortedEnd) is in order; what follows was appended since and may not be. */
  private sortedEnd = 0;
  /** A message was appended out of order since the last sort. */
  private unsorted = false;
  /** The earliest message (in the order) inserted since the last takeChange(). */
  private earliestNew: Message | undefined;
  /** Every message inserted since the last takeChange(). */
  private added: Message[] = [];

  /** `compare` is the total order (parts.ts: a planted bug may pass another). */
  constructor(private readonly compare: (a: Message, b: Message) => number = compareOrder) {}

  get size(): number {
    return this.items.length - this.head;
  }

  insert(m: Message): void {
    if (this.size > 0 && this.compare(this.items[this.items.length - 1], m) >= 0) this.unsorted = true;
    this.items.push(m);
    this.added.push(m);
    if (this.earliestNew === undefined || this.compare(m, this.earliestNew) < 0) this.earliestNew = m;
  }

  /** Where the order changed since the last call, and what it holds from there; undefined if nothing was inserted. */
  takeChange(): OrderChange | undefined {
    const earliest = this.earliestNew;
    if (earliest === undefined) return undefined;
    this.earliestNew = undefined;
    const added = this.added;
    this.added = [];
    this.sort();
    const at = this.indexOf(earliest);
    return { from: at - this.head, messages: this.items.slice(at), added };
  }

  /** Remove and return, in order, every message with ts <= stableTs. */
  takeStable(stableTs: number): Message[] {
    this.sort();
    const start = this.head;
    while (this.head < this.items.length && this.items[this.head].ts <= stableTs) this.head++;
    const taken = this.items.slice(start, this.head);
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.sortedEnd = this.items.length;
      this.head = 0;
    }
    return taken;
  }

  toArray(): Message[] {
    this.sort();
    return this.items.slice(this.head);
  }

  /** Binary search for a held message, by the log's order. */
  private indexOf(m: Message): number {
    let lo = this.head;
    let hi = this.items.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compare(this.items[mid], m) < 0) lo = mid + 1;
      else hi = mid;
    }
    // Only a broken comparator has ties; they sit next to each other.
    while (lo < this.items.length && this.items[lo] !== m && this.compare(this.items[lo], m) === 0) lo++;
    invariant(this.items[lo] === m, `message ${m.sender}:${m.seq} is not in the tentative order`);
    return lo;
  }

  /** Sort what was appended since the last sort and merge it into the sorted part, from where its first message belongs. */
  private sort(): void {
    const added = Math.max(this.sortedEnd, this.head);
    this.sortedEnd = this.items.length;
    if (!this.unsorted) return;
    this.unsorted = false;
    // Array.prototype.sort is stable, so even a broken comparator's ties keep arrival order.
    const fresh = this.items.slice(added).sort(this.compare);
    const from = this.insertionPoint(fresh[0], added);
    const merged = merge(this.items.slice(from, added), fresh, this.compare);
    // Per message: the text is built only if it fails.
    for (let i = 1; i < merged.length; i++) {
      if (compareOrder(merged[i - 1], merged[i]) === 0) throw new InvariantError(`two messages share order key (${merged[i].ts}, ${merged[i].sender})`);
    }
    if (from > this.head) invariant(compareOrder(this.items[from - 1], merged[0]) !== 0, `two messages share order key (${merged[0].ts}, ${merged[0].sender})`);
    this.items.length = from;
    for (const m of merged) this.items.push(m);
  }

  /** The first position in the sorted items[head, end) whose message comes after m (ties stay before it). */
  private insertionPoint(m: Message, end: number): number {
    let lo = this.head;
    let hi = end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compare(this.items[mid], m) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/** Two sorted runs as one; on a tie the first run's message goes first (a stable sort's order). */
function merge(a: readonly Message[], b: readonly Message[], compare: (x: Message, y: Message) => number): Message[] {
  const out: Message[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) out.push(compare(a[i], b[j]) <= 0 ? a[i++] : b[j++]);
  while (i < a.length) out.push(a[i++]);
  while (j < b.length) out.push(b[j++]);
  return out;
}
