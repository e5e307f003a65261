/**
 * Per-sender acceptance in sequence order. `contiguous[s-1]` is the highest
 * seq from s accepted with none missing. Messages that arrive ahead of a gap
 * wait in a bounded out-of-order buffer until the gap is filled; beyond
 * `receiveWindowMessages` ahead they are dropped (a NACK will fetch them later).
 *
 * A message that cannot be genuine is refused without advancing anything: a
 * sender's timestamps strictly increase with its seq (Lamport clock), and no
 * message can arrive at or behind the stable point. Only a faulty peer that
 * holds the cluster key could send one; refusing it keeps the order intact.
 */
import type { Message, ServerId } from './types.js';

export class ReceiveWindow {
  readonly contiguous: number[];
  private readonly ahead: Map<number, Message>[];
  /** Timestamp of the last message accepted from each sender. */
  private readonly lastTs: number[];

  constructor(
    contiguous: readonly number[],
    /** How far past the contiguous point a message may be buffered; past it, it is dropped. */
    private readonly receiveWindowMessages: number,
  ) {
    this.contiguous = [...contiguous];
    this.ahead = contiguous.map(() => new Map());
    this.lastTs = contiguous.map(() => 0);
  }

  /** Recovery: a message accepted in an earlier run (from a snapshot). */
  recall(m: Message): void {
    this.lastTs[m.sender - 1] = Math.max(this.lastTs[m.sender - 1], m.ts);
  }

  /**
   * Offer a message. Returns the messages now acceptable in sender order
   * (the offered one and any buffered ones it unblocks), or 'duplicate' /
   * 'buffered' / 'beyond-window' / 'inconsistent' (see above).
   */
  offer(m: Message, stableTs: number): Message[] | 'duplicate' | 'buffered' | 'beyond-window' | 'inconsistent' {
    const i = m.sender - 1;
    const next = this.contiguous[i] + 1;
    if (m.seq < next) return 'duplicate';
    if (m.seq > next) {
      if (m.seq - next >= this.receiveWindowMessages) return 'beyond-window';
      if (this.ahead[i].has(m.seq)) return 'duplicate';
      this.ahead[i].set(m.seq, m);
      return 'buffered';
    }
    if (!this.consistent(m, stableTs)) return 'inconsistent';
    const ready = [m];
    this.lastTs[i] = m.ts;
    const buffer = this.ahead[i];
    let seq = m.seq;
    for (let more = buffer.get(seq + 1); more; more = buffer.get(seq + 1)) {
      buffer.delete(seq + 1);
      if (!this.consistent(more, stableTs)) break;
      ready.push(more);
      this.lastTs[i] = more.ts;
      seq++;
    }
    this.contiguous[i] = seq;
    return ready;
  }

  private consistent(m: Message, stableTs: number): boolean {
    return m.ts > stableTs && m.ts > this.lastTs[m.sender - 1];
  }

  /**
   * The first missing range of sender, given the highest seq known to exist
   * (from peers' seq vectors): [contiguous+1, up to the first buffered seq].
   */
  gap(sender: ServerId, knownHighest: number): { fromSeq: number; toSeq: number } | undefined {
    const i = sender - 1;
    const fromSeq = this.contiguous[i] + 1;
    if (this.ahead[i].size === 0) return knownHighest >= fromSeq ? { fromSeq, toSeq: knownHighest } : undefined;
    let toSeq = knownHighest;
    let firstBuffered = Infinity;
    for (const seq of this.ahead[i].keys()) {
      firstBuffered = Math.min(firstBuffered, seq);
      toSeq = Math.max(toSeq, seq);
    }
    toSeq = Math.min(toSeq, firstBuffered - 1);
    return toSeq >= fromSeq ? { fromSeq, toSeq } : undefined;
  }

  /** Whether a message of sender's waits beyond a gap (evidence that the gap was lost, not merely late). */
  hasBuffered(sender: ServerId): boolean {
    return this.ahead[sender - 1].size > 0;
  }

  bufferedCount(): number {
    return this.ahead.reduce((sum, buffer) => sum + buffer.size, 0);
  }
}
