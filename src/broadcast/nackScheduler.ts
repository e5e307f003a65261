/**
 * When to ask for missing messages, and whom. Invariant: per sender at most
 * one NACK is outstanding, for at most maxNackMessages (a longer gap is
 * fetched in rounds, the next asked for as soon as the last is answered).
 *
 * A gap is NACKed at once when loss is evident (a later message of the
 * sender arrived before it), preferably to the server that handed that
 * message over (it likely holds the gap too). A gap known only from peers'
 * seq vectors may still be on its way (peers report what they got while
 * this server has not yet read it), so it is NACKed only once it has made
 * no progress for nackRetryMs. An outstanding NACK is sent again, to the
 * next server that holds the range, only when its answer made no progress
 * for nackRetryMs: a large answer still arriving is never asked for twice.
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

/** One sender's gap, from when it opened until it closes. */
interface Episode {
  /** The gap opened, or last made progress, or was last NACKed, at this time. */
  waitingSince: number;
  /** The sender's contiguous seq when last looked at. */
  contiguous: number;
  /** The seq up to which the last NACK asked (0: none sent in this episode). */
  nackedUpTo: number;
}

export class NackScheduler {
  private readonly episodes: (Episode | undefined)[];
  private readonly attempts: number[];
  /** The server that last handed us a message beyond a gap. */
  private readonly gapHint: (ServerId | undefined)[];

  constructor(
    private readonly me: ServerId,
    serverCount: number,
    private readonly nackRetryMs: number,
    private readonly maxNackMessages: number,
  ) {
    this.episodes = new Array<Episode | undefined>(serverCount).fill(undefined);
    this.attempts = new Array<number>(serverCount).fill(0);
    this.gapHint = new Array<ServerId | undefined>(serverCount).fill(undefined);
  }

  /** `from` handed over a message of sender's beyond a gap. */
  hint(sender: ServerId, from: ServerId): void {
    this.gapHint[sender - 1] = from;
  }

  /** Sender's messages have no gap now. */
  closed(sender: ServerId): void {
    this.episodes[sender - 1] = undefined;
  }

  /**
   * The NACK to send now for sender's gap, if one is due. `lossSeen`: a
   * later message of the sender is buffered beyond the gap. `holders(hint)`
   * lists the servers in the view that hold the gap's first message (the
   * sender, the hinted server, and any whose seq vector shows it).
   */
  plan(now: number, sender: ServerId, gap: Gap, contiguous: number, lossSeen: boolean, holders: (hint: ServerId | undefined) => ServerId[]): NackTo | undefined {
    const i = sender - 1;
    const episode = (this.episodes[i] ??= { waitingSince: now, contiguous, nackedUpTo: 0 });
    if (contiguous > episode.contiguous) {
      episode.contiguous = contiguous;
      episode.waitingSince = now;
    }
    const nacked = episode.nackedUpTo > 0;
    const answered = nacked && contiguous >= episode.nackedUpTo;
    const due = answered || (!nacked && lossSeen) || now >= episode.waitingSince + this.nackRetryMs;
    if (!due) return undefined;
    episode.waitingSince = now;
    const candidates = holders(this.gapHint[i]);
    if (candidates.length === 0) return undefined;
    const to = candidates[this.attempts[i] % candidates.length];
    const toSeq = Math.min(gap.toSeq, gap.fromSeq + this.maxNackMessages - 1);
    episode.nackedUpTo = toSeq;
    this.attempts[i]++;
    return { to, packet: { type: 'nack', from: this.me, sender, fromSeq: gap.fromSeq, toSeq } };
  }

  /** When sender's gap may be NACKed (again) if it makes no progress. */
  retryAt(sender: ServerId): number {
    const episode = this.episodes[sender - 1];
    return episode ? episode.waitingSince + this.nackRetryMs : Infinity;
  }
}
