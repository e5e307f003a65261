/**
 * When to ask for missing messages, and whom. Invariant: per sender at most
 * one NACK is outstanding; it is sent again, to the next server that holds
 * the range, only once nackRetryMs pass without the gap closing up to what
 * was asked. A gap is NACKed at once when it is first seen, preferably to
 * the server that handed over the message beyond it (it likely holds the
 * gap too). A NACK asks for at most maxNackMessages; a longer gap is fetched
 * in several rounds.
 */
import type { NackPacket, ServerId } from './types.js';

export interface NackTo {
  readonly to: ServerId;
  readonly packet: NackPacket;
}

export interface Gap {
  readonly fromSeq: number;
  readonly toSeq: number;
}

export class NackScheduler {
  private readonly lastNackAt: number[];
  private readonly attempts: number[];
  /** A NACK for a sender is outstanding until contiguous reaches this seq. */
  private readonly nackedUpTo: number[];
  /** The server that last handed us a message beyond a gap. */
  private readonly gapHint: (ServerId | undefined)[];

  constructor(
    private readonly me: ServerId,
    serverCount: number,
    private readonly nackRetryMs: number,
    private readonly maxNackMessages: number,
  ) {
    this.lastNackAt = new Array<number>(serverCount).fill(-Infinity);
    this.attempts = new Array<number>(serverCount).fill(0);
    this.nackedUpTo = new Array<number>(serverCount).fill(0);
    this.gapHint = new Array<ServerId | undefined>(serverCount).fill(undefined);
  }

  /** `from` handed over a message of sender's beyond a gap. */
  hint(sender: ServerId, from: ServerId): void {
    this.gapHint[sender - 1] = from;
  }

  /**
   * The NACK to send now for sender's gap, if one is due. `holders(hint)`
   * lists the servers in the view that hold the gap's first message (the
   * sender, the hinted server, and any whose seq vector shows it).
   */
  plan(now: number, sender: ServerId, gap: Gap, contiguous: number, holders: (hint: ServerId | undefined) => ServerId[]): NackTo | undefined {
    const i = sender - 1;
    const answered = contiguous >= this.nackedUpTo[i];
    if (!answered && now < this.lastNackAt[i] + this.nackRetryMs) return undefined;
    this.lastNackAt[i] = now;
    const candidates = holders(this.gapHint[i]);
    if (candidates.length === 0) return undefined;
    const to = candidates[this.attempts[i] % candidates.length];
    const toSeq = Math.min(gap.toSeq, gap.fromSeq + this.maxNackMessages - 1);
    this.nackedUpTo[i] = toSeq;
    this.attempts[i]++;
    return { to, packet: { type: 'nack', from: this.me, sender, fromSeq: gap.fromSeq, toSeq } };
  }

  /** When sender's outstanding NACK may be retried. */
  retryAt(sender: ServerId): number {
    return this.lastNackAt[sender - 1] + this.nackRetryMs;
  }
}
