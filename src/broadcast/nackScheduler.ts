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
 * no progress for nackRetryMs.
 *
 * The rounds of one gap go to one server while it answers. An outstanding
 * NACK is sent again, to the next server that holds the range, only when
 * its answer made no progress for the retry time, as seen by two steps in
 * a row (after a long step the first may run before the server has read
 * the answer waiting for it); each such retry doubles the retry time (up to
 * maxRetryFactor times nackRetryMs), and an answered round sets it to twice
 * what that answer took (at least nackRetryMs). So a server that is slow to
 * read its answers (long steps while it catches up) is not sent the same
 * range again by every holder in turn.
 *
 * A stalled answer usually comes after all, late (its server was busy), so
 * whatever the retry asks for arrives twice. The retry therefore asks for
 * an eighth of the range limit, and each answered round doubles the range
 * again up to the limit (as TCP restarts slowly after a timeout): a stall
 * costs at most that eighth in duplicates, not a whole range.
 */
import type { NackPacket, ServerId } from './types.js';

export interface NackTo {
  readonly to: ServerId;
  readonly packet: NackPacket;
  /** Sent again: the previous NACK's answer made no progress for the retry time. */
  readonly resent: boolean;
}

export interface Gap {
  readonly fromSeq: number;
  readonly toSeq: number;
}

/** The retry time never grows past this many times nackRetryMs. */
export const maxRetryFactor = 16;
/** After a stall the range asked for is the limit divided by this; it doubles with each answered round. */
export const stallRangeDivisor = 8;

/** One sender's gap, from when it opened until it closes. */
interface Episode {
  /** The gap opened, or last made progress, or was last NACKed, at this time. */
  waitingSince: number;
  /** The sender's contiguous seq when last looked at. */
  contiguous: number;
  /** The seq up to which the last NACK asked (0: none sent in this episode). */
  nackedUpTo: number;
  /** When the last NACK was sent. */
  nackedAt: number;
  /** When the outstanding NACK was first seen overdue: it is sent again only if a later step still sees no progress. */
  overdueAt?: number;
}

interface Source {
  /** Index into the holders of the server asked; it changes only when an answer stalls. */
  index: number;
  /** How long an outstanding NACK may make no progress before it is sent again. */
  retryMs: number;
  /** Most messages the next NACK asks for: smaller after a stall, back to maxNackMessages as answers come. */
  rangeMessages: number;
}

export class NackScheduler {
  private readonly episodes: (Episode | undefined)[];
  private readonly sources: Source[];
  /** The server that last handed us a message beyond a gap. */
  private readonly gapHint: (ServerId | undefined)[];

  constructor(
    private readonly me: ServerId,
    serverCount: number,
    private readonly nackRetryMs: number,
    private readonly maxNackMessages: number,
  ) {
    this.episodes = new Array<Episode | undefined>(serverCount).fill(undefined);
    this.sources = Array.from({ length: serverCount }, () => ({ index: 0, retryMs: nackRetryMs, rangeMessages: maxNackMessages }));
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
    const episode = (this.episodes[i] ??= { waitingSince: now, contiguous, nackedUpTo: 0, nackedAt: now });
    const source = this.sources[i];
    if (contiguous > episode.contiguous) {
      episode.contiguous = contiguous;
      episode.waitingSince = now;
      episode.overdueAt = undefined;
    }
    const nacked = episode.nackedUpTo > 0;
    const answered = nacked && contiguous >= episode.nackedUpTo;
    const overdue = nacked && !answered && now >= episode.waitingSince + source.retryMs;
    // A server that was busy may not have read the answer yet: judge again after it has read what waits.
    if (overdue && episode.overdueAt === undefined) episode.overdueAt = now;
    const stalled = overdue && now > episode.overdueAt!;
    const due = answered || stalled || (!nacked && (lossSeen || now >= episode.waitingSince + this.nackRetryMs));
    if (!due) return undefined;
    if (answered) {
      source.retryMs = clamp(2 * (now - episode.nackedAt), this.nackRetryMs, maxRetryFactor * this.nackRetryMs);
      source.rangeMessages = Math.min(2 * source.rangeMessages, this.maxNackMessages);
    }
    if (stalled) {
      source.index++;
      source.retryMs = Math.min(2 * source.retryMs, maxRetryFactor * this.nackRetryMs);
      source.rangeMessages = Math.max(1, Math.floor(this.maxNackMessages / stallRangeDivisor));
    }
    episode.waitingSince = now;
    episode.overdueAt = undefined;
    const candidates = holders(this.gapHint[i]);
    if (candidates.length === 0) return undefined;
    const to = candidates[source.index % candidates.length];
    const toSeq = Math.min(gap.toSeq, gap.fromSeq + source.rangeMessages - 1);
    episode.nackedUpTo = toSeq;
    episode.nackedAt = now;
    return { to, packet: { type: 'nack', from: this.me, sender, fromSeq: gap.fromSeq, toSeq }, resent: stalled };
  }

  /** When sender's gap may be NACKed (again) if it makes no progress. */
  retryAt(sender: ServerId): number {
    const episode = this.episodes[sender - 1];
    if (!episode) return Infinity;
    if (episode.overdueAt !== undefined) return episode.overdueAt + 1;
    return episode.waitingSince + (episode.nackedUpTo > 0 ? this.sources[sender - 1].retryMs : this.nackRetryMs);
  }
}

function clamp(x: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, x));
}
