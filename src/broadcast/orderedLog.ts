/**
 * The tentative suffix of the total order: messages accepted but not yet
 * stable, kept sorted by (ts, sender). Messages usually arrive in order, so
 * insertion checks the tail first; a late message is placed by binary search.
 * The stable prefix is taken off the front as the stable point advances.
 */
import { invariant } from '../errors.js';
import { compareOrder, type Message } from './types.js';

export class OrderedLog {
  private items: Message[] = [];

  /** `compare` is the total order; only the simulator's deliberately broken variants pass another. */
  constructor(private readonly compare: (a: Message, b: Message) => number = compareOrder) {}

  /** Index of the first message still held; the front is compacted lazily. */
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  /** Insert a message; returns its position in the tentative suffix (0 = first). */
  insert(m: Message): number {
    const items = this.items;
    const last = items[items.length - 1];
    if (this.size === 0 || this.compare(last, m) < 0) {
      items.push(m);
      return items.length - 1 - this.head;
    }
    let lo = this.head;
    let hi = items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.compare(items[mid], m) <= 0) lo = mid + 1;
      else hi = mid;
    }
    invariant(lo === this.head || compareOrder(items[lo - 1], m) !== 0, `two messages share order key (${m.ts}, ${m.sender})`);
    items.splice(lo, 0, m);
    return lo - this.head;
  }

  /** Remove and return, in order, every message with ts <= stableTs. */
  takeStable(stableTs: number): Message[] {
    const start = this.head;
    while (this.head < this.items.length && this.items[this.head].ts <= stableTs) this.head++;
    const taken = this.items.slice(start, this.head);
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return taken;
  }

  first(): Message | undefined {
    return this.items[this.head];
  }

  toArray(): Message[] {
    return this.items.slice(this.head);
  }
}
