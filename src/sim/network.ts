/**
 * An in-memory datagram network for tests and the simulator, driven by a
 * seeded generator: loss, duplication, reordering (random delay), symmetric
 * and one-way cuts. Datagrams travel encoded, so the codec is exercised too.
 */
import { MinHeap } from './minHeap.js';
import { Random } from './random.js';

export interface NetworkFaults {
  /** Probability a datagram is dropped. */
  loss: number;
  /** Probability a delivered datagram is delivered twice. */
  duplicate: number;
  /** Delay of a datagram: minDelayMs plus up to jitterMs (which reorders). */
  minDelayMs: number;
  jitterMs: number;
}

export const noFaults: NetworkFaults = { loss: 0, duplicate: 0, minDelayMs: 0.1, jitterMs: 0 };

interface InFlight {
  at: number;
  order: number;
  from: number;
  to: number;
  bytes: Uint8Array;
}

export class SimNetwork {
  faults: NetworkFaults;
  private readonly blocked = new Set<string>();
  private readonly queue = new MinHeap<InFlight>((a, b) => a.at - b.at || a.order - b.order);
  private order = 0;

  constructor(
    private readonly random: Random,
    faults: NetworkFaults = noFaults,
  ) {
    this.faults = { ...faults };
  }

  send(from: number, to: number, bytes: Uint8Array, now: number): void {
    if (this.blocked.has(`${from}>${to}`) || this.random.chance(this.faults.loss)) return;
    const copies = this.random.chance(this.faults.duplicate) ? 2 : 1;
    for (let c = 0; c < copies; c++) {
      const at = now + this.faults.minDelayMs + this.random.next() * this.faults.jitterMs;
      this.queue.push({ at, order: this.order++, from, to, bytes });
    }
  }

  /** Only servers within the same group hear each other; servers not named are isolated. */
  partition(groups: readonly (readonly number[])[], serverCount: number): void {
    this.blocked.clear();
    const groupOf = new Map<number, number>();
    groups.forEach((group, g) => group.forEach((id) => groupOf.set(id, g)));
    for (let a = 1; a <= serverCount; a++) {
      for (let b = 1; b <= serverCount; b++) {
        if (a === b) continue;
        const ga = groupOf.get(a);
        if (ga === undefined || ga !== groupOf.get(b)) this.blocked.add(`${a}>${b}`);
      }
    }
  }

  /** Block datagrams from `from` to `to` only. */
  cutOneWay(from: number, to: number): void {
    this.blocked.add(`${from}>${to}`);
  }

  heal(): void {
    this.blocked.clear();
  }

  nextDeliveryAt(): number {
    return this.queue.peek()?.at ?? Infinity;
  }

  /** Remove and return the datagrams due by `now`, earliest first. */
  due(now: number): InFlight[] {
    const ready: InFlight[] = [];
    while ((this.queue.peek()?.at ?? Infinity) <= now) ready.push(this.queue.pop()!);
    return ready;
  }

}
