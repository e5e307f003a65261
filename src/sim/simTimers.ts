/** Timers on simulated time: the RPC endpoints' push timers and the client links' deliveries, run by the cluster's step in time order. */
import { MinHeap } from './minHeap.js';

interface Timer {
  readonly at: number;
  readonly order: number;
  readonly fn: () => void;
  cancelled: boolean;
}

export class SimTimers {
  private readonly queue = new MinHeap<Timer>((a, b) => a.at - b.at || a.order - b.order);
  private order = 0;

  constructor(readonly now: () => number) {}

  /** Run `fn` at simulated time `at` (not before now); returns its cancel. */
  at(at: number, fn: () => void): () => void {
    const timer: Timer = { at: Math.max(at, this.now()), order: this.order++, fn, cancelled: false };
    this.queue.push(timer);
    return () => (timer.cancelled = true);
  }

  after(ms: number, fn: () => void): () => void {
    return this.at(this.now() + ms, fn);
  }

  /** When the next timer is due (Infinity if none). */
  nextAt(): number {
    while (this.queue.peek()?.cancelled) this.queue.pop();
    return this.queue.peek()?.at ?? Infinity;
  }

  /** Run the next timer due. */
  runNext(): void {
    const timer = this.queue.pop();
    if (timer && !timer.cancelled) timer.fn();
  }
}
