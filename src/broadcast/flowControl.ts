/**
 * Flow control of own broadcasts. Invariant: at most `sendWindowMessages`
 * own messages are sequenced and not yet held by every server in the view;
 * broadcasts past that wait here, in order, and are sequenced as the window
 * opens. Servers outside the view do not count, so a partition never blocks
 * a side. At most `maxQueuedBroadcasts` wait; past that a broadcast is
 * refused as 'busy' (the client is told to try again).
 */
export class FlowControl<T> {
  private queue: T[] = [];
  /** Index of the first waiting item; the front is compacted lazily. */
  private head = 0;

  constructor(
    private readonly sendWindowMessages: number,
    private readonly maxQueuedBroadcasts: number,
  ) {}

  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Queue an item; false when the queue is full. */
  offer(item: T): boolean {
    if (this.queued >= this.maxQueuedBroadcasts) return false;
    this.queue.push(item);
    return true;
  }

  /** Take the items that may be sequenced now, with `inFlight` own messages not yet held by all of the view. */
  admit(inFlight: number): T[] {
    const room = Math.max(0, this.sendWindowMessages - inFlight);
    const count = Math.min(room, this.queued);
    if (count === 0) return [];
    const taken = this.queue.slice(this.head, this.head + count);
    this.head += count;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return taken;
  }
}
