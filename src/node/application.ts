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

/** Hash chain over the stable order: two servers agree on the stable prefix iff counts and digests match. */
export class OrderDigest implements Application {
  stableCount: number;
  private chain: string;

  constructor(saved: unknown) {
    const state = isState(saved) ? saved : { stableCount: 0, chain: '' };
    this.stableCount = state.stableCount;
    this.chain = state.chain;
  }

  apply(_ordered: OrderChange | undefined, stable: readonly Message[]): void {
    for (const m of stable) {
      this.chain = createHash('sha256').update(`${this.chain}|${m.sender}:${m.seq}:${m.ts}:${m.payload}`).digest('hex');
      this.stableCount++;
    }
  }

  viewChanged(): void {}

  snapshot(): unknown {
    return { stableCount: this.stableCount, chain: this.chain };
  }

  digest(): string {
    return `${this.stableCount}:${this.chain.slice(0, 16)}`;
  }
}

function isState(value: unknown): value is { stableCount: number; chain: string } {
  const v = value as { stableCount?: unknown; chain?: unknown } | null;
  return typeof v === 'object' && v !== null && Number.isSafeInteger(v.stableCount) && typeof v.chain === 'string';
}
