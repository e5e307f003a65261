/**
 * Per-sender acceptance in sequence order. `contiguous[s-1]` is the highest
 * seq from s accepted with none missing. Messages that arrive ahead of a gap
 * wait in a bounded out-of-order buffer until the gap is filled; beyond
 * `receiveWindowMessages` ahead they are dropped (a NACK will fetch them later).
 */
import type { Message, ServerId } from './types.js';

export class ReceiveWindow {
  readonly contiguous: number[];
  private readonly ahead: Map<number, Message>[];

  constructor(
    contiguous: readonly number[],
    /** How far past the contiguous point a message may be buffered; past it, it is dropped. */
    private readonly receiveWindowMessages: number,
  ) {
    this.contiguous = [...contiguous];
    this.ahead = contiguous.map(() => new Map());
  }

  /**
   * Offer a message. Returns the messages now acceptable in sender order
   * (the offered one and any buffered ones it unblocks), or 'duplicate' /
   * 'buffered' / 'beyond-window'.
   */
  offer(m: Message): Message[] | 'duplicate' | 'buffered' | 'beyond-window' {
    const i = m.sender - 1;
    const next = this.contiguous[i] + 1;
    if (m.seq < next) return 'duplicate';
    if (m.seq > next) {
      if (m.seq - next >= this.receiveWindowMessages) return 'beyond-window';
      if (this.ahead[i].has(m.seq)) return 'duplicate';
      this.ahead[i].set(m.seq, m);
      return 'buffered';
    }
    const ready = [m];
    const buffer = this.ahead[i];
    let seq = m.seq;
    for (let more = buffer.get(seq + 1); more; more = buffer.get(seq + 1)) {
      buffer.delete(seq + 1);
      ready.push(more);
      seq++;
    }
    this.contiguous[i] = seq;
    return ready;
  }

  /**
   * The first missing range of sender, given the highest seq known to exist
   * (from peers' seq vectors): [contiguous+1, up to the first buffered seq].
   */
  gap(sender: ServerId, knownHighest: number): { fromSeq: number; toSeq: number } | undefined {
    const i = sender - 1;
    const fromSeq = this.contiguous[i] + 1;
    let toSeq = knownHighest;
    let firstBuffered = Infinity;
    for (const seq of this.ahead[i].keys()) {
      firstBuffered = Math.min(firstBuffered, seq);
      toSeq = Math.max(toSeq, seq);
    }
    toSeq = Math.min(toSeq, firstBuffered - 1);
    return toSeq >= fromSeq ? { fromSeq, toSeq } : undefined;
  }

  bufferedCount(): number {
    return this.ahead.reduce((sum, buffer) => sum + buffer.size, 0);
  }
}
