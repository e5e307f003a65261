/**
 * The tentative suffix of the total order: messages accepted but not yet
 * stable, sorted by (ts, sender). Messages usually arrive in order and are
 * appended; late ones (a heal, a catch-up) are appended too and the log is
 * sorted once when next read, so a burst of thousands costs one sort rather
 * than one insertion into the middle each. The stable prefix is taken off
 * the front as the stable point advances.
 *
 * Invariant: between two takeChange() calls, every position before the
 * reported `from` is unchanged, so a reader that mirrors the log (the chat
 * replica) stays identical to it by replacing its suffix from there.
 */
import { invariant } from '../errors.js';
import { compareOrder, type Message } from './types.js';

/** The tentative order changed: from position `from` (counted from its front after the last stable messages left) it is now `messages`. */
export interface OrderChange {
  readonly from: number;
  readonly messages: readonly Message[];
}

export class OrderedLog {
  private items: Message[] = [];
  /** Index of the first message still held; the front is compacted lazily. */
  private head = 0;
  /** A message was appended out of order since the last sort. */
  private unsorted = false;
  /** The earliest message (in the order) inserted since the last takeChange(). */
  private earliestNew: Message | undefined;

  /** `compare` is the total order; only the simulator's deliberately broken variants pass another. */
  constructor(private readonly compare: (a: Message, b: Message) => number = compareOrder) {}

  get size(): number {
    return this.items.length - this.head;
  }

  insert(m: Message): void {
    if (this.size > 0 && this.compare(this.items[this.items.length - 1], m) >= 0) this.unsorted = true;
    this.items.push(m);
    if (this.earliestNew === undefined || this.compare(m, this.earliestNew) < 0) this.earliestNew = m;
  }

  /** Where the order changed since the last call, and what it holds from there; undefined if nothing was inserted. */
  takeChange(): OrderChange | undefined {
    const earliest = this.earliestNew;
    if (earliest === undefined) return undefined;
    this.earliestNew = undefined;
    this.sort();
    const at = this.indexOf(earliest);
    return { from: at - this.head, messages: this.items.slice(at) };
  }

  /** Remove and return, in order, every message with ts <= stableTs. */
  takeStable(stableTs: number): Message[] {
    this.sort();
    const start = this.head;
    while (this.head < this.items.length && this.items[this.head].ts <= stableTs) this.head++;
    const taken = this.items.slice(start, this.head);
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
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

  private sort(): void {
    if (!this.unsorted) return;
    this.unsorted = false;
    // Array.prototype.sort is stable, so even a broken comparator's ties keep arrival order.
    const live = this.items.slice(this.head).sort(this.compare);
    for (let i = 1; i < live.length; i++) {
      invariant(compareOrder(live[i - 1], live[i]) !== 0, `two messages share order key (${live[i].ts}, ${live[i].sender})`);
    }
    this.items = live;
    this.head = 0;
  }
}
