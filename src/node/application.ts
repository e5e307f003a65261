/**
 * What a node replicates: an application fed the total order. The chat
 * (src/chat/chatApp.ts) is one; the order digest below is the simplest, used
 * by the broadcast layer's own tests and tools.
 */
import { createHash } from 'node:crypto';
import type { OrderChange } from '../broadcast/orderedLog.js';
import type { Message, ServerId } from '../broadcast/types.js';

export interface Application {
  /**
   * How the tentative total order changed (its suffix from the first changed
   * position), then the newly stable messages (final, a prefix of that order).
   * A stable message was in the order before or in the same call.
   */
  apply(ordered: OrderChange | undefined, stable: readonly Message[]): void;
  /** The current view changed. */
  viewChanged(view: readonly ServerId[]): void;
  /** JSON-serialisable state after every stable message: saved in snapshots. */
  snapshot(): unknown;
  /** A short digest of the state; equal digests mean equal states. */
  digest(): string;
}

/** Builds the application from its state in the last snapshot (undefined: none). */
export type ApplicationFactory = (saved: unknown) => Application;

/**
 * Hash chain over the stable order: two servers agree on the stable prefix
 * iff counts and digests match. Each message extends the chain, so the cost
 * is per message, never per history; digestWith continues it over a
 * tentative suffix without changing it.
 */
export class OrderDigest implements Application {
  stableCount: number;
  private chain: Buffer;

  constructor(saved: unknown) {
    const state = isOrderDigestState(saved) ? saved : { stableCount: 0, chain: '' };
    this.stableCount = state.stableCount;
    // An empty chain (no message yet) is all zeros, so that every digest has the same form.
    this.chain = state.chain === '' ? Buffer.alloc(32) : Buffer.from(state.chain, 'hex');
  }

  apply(_ordered: OrderChange | undefined, stable: readonly Message[]): void {
    for (const m of stable) this.chain = chained(this.chain, m);
    this.stableCount += stable.length;
  }

  viewChanged(): void {}

  snapshot(): { stableCount: number; chain: string } {
    return { stableCount: this.stableCount, chain: this.chain.toString('hex') };
  }

  digest(): string {
    return this.digestWith([]);
  }

  /** The digest of the stable order followed by `tentative`. */
  digestWith(tentative: readonly Message[]): string {
    let chain = this.chain;
    for (const m of tentative) chain = chained(chain, m);
    return `${this.stableCount + tentative.length}:${chain.toString('hex', 0, 8)}`;
  }
}

function chained(chain: Buffer, m: Message): Buffer {
  return createHash('sha256').update(chain).update(`${m.sender}:${m.seq}:${m.ts}:`).update(m.payload).digest();
}

export function isOrderDigestState(value: unknown): value is { stableCount: number; chain: string } {
  const v = value as { stableCount?: unknown; chain?: unknown } | null;
  return typeof v === 'object' && v !== null && Number.isSafeInteger(v.stableCount) && typeof v.chain === 'string' && /^([0-9a-f]{2})*$/.test(v.chain);
}
