/**
 * Anti-replay for authenticated datagrams (see envelope.ts). Each datagram
 * names the run (incarnation) of its sender and of its receiver and carries
 * a counter; the receiver accepts each (sender run, counter) at most once:
 *
 * - addressed to an earlier run of this server (or before the sender heard of
 *   this run): `stale`. Normal for a moment after either side restarts;
 * - from an earlier run of the sender than one already heard: `replayed`;
 * - a counter already seen, or older than the sliding window: `replayed`.
 *
 * The window is a bitmap of the last `windowSize` counters, as in IPsec
 * (RFC 4303 section 3.4.3), so reordered datagrams are still accepted.
 *
 * Learning from a datagram's authenticated header (the sender's current run)
 * happens even when the datagram is stale, so two servers that restart learn
 * each other's runs within one heartbeat.
 */
import type { EnvelopeHeader } from './envelope.js';

export const replayWindowSize = 4096;

export type ReplayVerdict = 'accept' | 'stale' | 'replayed';

interface SenderWindow {
  incarnation: number;
  highest: number;
  readonly seen: Uint32Array;
}

export class ReplayGuard {
  private readonly windows: (SenderWindow | undefined)[];

  constructor(
    readonly myIncarnation: number,
    serverCount: number,
  ) {
    this.windows = new Array<SenderWindow | undefined>(serverCount + 1).fill(undefined);
  }

  /** The latest run heard from `server` (0 if none): what datagrams to it must name. */
  incarnationOf(server: number): number {
    return this.windows[server]?.incarnation ?? 0;
  }

  /** Check an authenticated header; an accepted counter is remembered. */
  check(header: EnvelopeHeader): ReplayVerdict {
    const window = this.windowFor(header.from, header.fromIncarnation);
    if (window === undefined) return 'replayed';
    if (header.toIncarnation !== this.myIncarnation) return 'stale';
    return markSeen(window, header.counter) ? 'accept' : 'replayed';
  }

  /** The sender's window for this run; undefined when the run is older than one heard. */
  private windowFor(from: number, incarnation: number): SenderWindow | undefined {
    const current = this.windows[from];
    if (current !== undefined && incarnation < current.incarnation) return undefined;
    if (current !== undefined && incarnation === current.incarnation) return current;
    const fresh: SenderWindow = { incarnation, highest: 0, seen: new Uint32Array(replayWindowSize / 32) };
    this.windows[from] = fresh;
    return fresh;
  }
}

/** Record a counter; false if it was seen already or is too old to tell. */
function markSeen(window: SenderWindow, counter: number): boolean {
  if (counter < 1) return false;
  if (counter > window.highest) {
    const advance = counter - window.highest;
    if (advance >= replayWindowSize) window.seen.fill(0);
    else for (let c = window.highest + 1; c < counter; c++) setBit(window.seen, c, false);
    setBit(window.seen, counter, true);
    window.highest = counter;
    return true;
  }
  if (window.highest - counter >= replayWindowSize) return false;
  if (getBit(window.seen, counter)) return false;
  setBit(window.seen, counter, true);
  return true;
}

function getBit(bits: Uint32Array, counter: number): boolean {
  const i = counter % replayWindowSize;
  return (bits[i >>> 5] & (1 << (i & 31))) !== 0;
}

function setBit(bits: Uint32Array, counter: number, on: boolean): void {
  const i = counter % replayWindowSize;
  if (on) bits[i >>> 5] |= 1 << (i & 31);
  else bits[i >>> 5] &= ~(1 << (i & 31));
}
