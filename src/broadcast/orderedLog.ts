/**
 * The tentative suffix of the total order: messages accepted but not yet
 * stable, sorted by (ts, sender). Messages usually arrive in order and are
 * appended; late ones (a heal, a catch-up) are appended too and the log is
 * sorted once when next read, so a burst of thousands costs one sort rather
 * than one insertion into the middle each. The stable prefix is taken off
 * the front as the stable point advances.
 */
import { invariant } from '../errors.js';
import { compareOrder, type Message } from './types.js';

export class OrderedLog {
  private items: Message[] = [];
  /** Index of the first message still held; the front is compacted lazily. */
  private head = 0;
  /** A message was appended out of order since the last sort. */
  private unsorted = false;

  /** `compare` is the total order; only the simulator's deliberately broken variants pass another. */
  constructor(private readonly compare: (a: Message, b: Message) => number = compareOrder) {}

  get size(): number {
    return this.items.length - this.head;
  }

  insert(m: Message): void {
    if (this.size > 0 && this.compare(this.items[this.items.length - 1], m) >= 0) this.unsorted = true;
    this.items.push(m);
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
