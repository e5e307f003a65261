/**
 * Every accepted message, own or a peer's, until garbage collection: any
 * server holding a message can retransmit it. Per sender the held seqs are
 * contiguous (messages are accepted in sender order and collected from the
 * front), so each sender's messages live in an array with a base seq.
 */
import { InvariantError } from '../errors.js';
import type { Message, ServerId } from './types.js';

export class RetransmitStore {
  private readonly bySender: Message[][];
  /** Seq of bySender[s-1][0]: one past the last collected seq. */
  private readonly baseSeq: number[];

  constructor(serverCount: number, collectedUpTo: readonly number[]) {
    this.bySender = Array.from({ length: serverCount }, () => []);
    this.baseSeq = collectedUpTo.map((seq) => seq + 1);
  }

  get size(): number {
    return this.bySender.reduce((sum, list) => sum + list.length, 0);
  }

  add(m: Message): void {
    const list = this.bySender[m.sender - 1];
    // Per message: the text is built only if it fails.
    if (m.seq !== this.baseSeq[m.sender - 1] + list.length) throw new InvariantError(`store gap: ${m.sender}:${m.seq} after ${list.length} held`);
    list.push(m);
  }

  /** Messages of sender in [fromSeq, toSeq] still held, at most maxCount. */
  range(sender: ServerId, fromSeq: number, toSeq: number, maxCount: number): Message[] {
    const list = this.bySender[sender - 1];
    const base = this.baseSeq[sender - 1];
    const start = Math.max(fromSeq - base, 0);
    const end = Math.min(toSeq - base + 1, list.length, start + maxCount);
    return start < end ? list.slice(start, end) : [];
  }

  /** Garbage-collect sender's messages up to and including seq. Returns how many were removed. */
  collectUpTo(sender: ServerId, seq: number): number {
    const list = this.bySender[sender - 1];
    const count = Math.min(seq - this.baseSeq[sender - 1] + 1, list.length);
    if (count <= 0) return 0;
    list.splice(0, count);
    this.baseSeq[sender - 1] += count;
    return count;
  }

  /** Highest collected seq per sender. */
  collectedUpTo(): number[] {
    return this.baseSeq.map((base) => base - 1);
  }

  all(): Message[] {
    return this.bySender.flat();
  }
}
