/**
 * What a node replicates: an application fed the total order. The chat
 * (src/chat/chatApp.ts) is one; the order digest below is the simplest, used
 * by the broadcast layer's own tests and tools.
 */
import { createHash } from 'node:crypto';
import type { OrderChange } from '../broadcast/tentativeOrder.js';
import type { Message, ServerId } from '../broadcast/types.js';
import type { DurableWhen } from './ports.js';

export interface Application {
  /**
   * How the tentative total order changed (its suffix from the first changed
   * position), then the newly stable messages (final, a prefix of that order).
   * A stable message was in the order before or in the same call.
   */
  apply(ordered: OrderChange | undefined, stable: readonly Message[]): void;
  /** The current view changed. */
  viewChanged(view: readonly ServerId[]): void;
  /** JSON-serialisable state after every stable message: saved in snapshots. What it counts on that the application stored itself is durable when this returns. */
  snapshot(): unknown;
  /** The same state, at once, for an application that stores files of its own: what the state counts on is made durable off the event loop, and `durable` says when (the snapshot is installed only then). */
  snapshotInBackground?(): { readonly state: unknown; readonly durable: DurableWhen };
  /** A short digest of the state; equal digests mean equal states. */
  digest(): string;
}

/** Builds the application from its state in the last snapshot (undefined: none). */
export type ApplicationFactory = (saved: unknown) => Application;

/** Stable messages hashed together per link of the chain (a link costs one hash object; a message only an update). */
export const chainBlockMessages = 64;

interface OrderDigestState {
  readonly stableCount: number;
  /** The chain up to the last whole block, hex. */
  readonly chain: string;
  /** The stable messages after it (fewer than a block). */
  readonly block?: readonly Message[];
}

/**
 * Hash chain over the stable order: two servers agree on the stable prefix
 * iff counts and digests match. The stable order is cut into blocks of
 * chainBlockMessages by position, each link the hash of the previous one
 * and a block, so the cost is per message, never per history, and the same
 * at every server whatever steps the messages came in; digestWith continues
 * it over a tentative suffix (as if stable) without changing it.
 */
export class OrderDigest implements Application {
  stableCount: number;
  private chain: Buffer;
  private block: Message[];

  constructor(saved: unknown) {
    const state: OrderDigestState = isOrderDigestState(saved) ? saved : { stableCount: 0, chain: '' };
    this.stableCount = state.stableCount;
    // An empty chain (no message yet) is all zeros, so that every digest has the same form.
    this.chain = state.chain === '' ? Buffer.alloc(32) : Buffer.from(state.chain, 'hex');
    this.block = [...(state.block ?? [])];
  }

  apply(_ordered: OrderChange | undefined, stable: readonly Message[]): void {
    for (const m of stable) {
      this.block.push(m);
      if (this.block.length < chainBlockMessages) continue;
      this.chain = hashOf(this.chain, this.block);
      this.block = [];
    }
    this.stableCount += stable.length;
  }

  viewChanged(): void {}

  snapshot(): OrderDigestState {
    return { stableCount: this.stableCount, chain: this.chain.toString('hex'), block: this.block.map(({ sender, seq, ts, payload }) => ({ sender, seq, ts, payload })) };
  }

  digest(): string {
    return this.digestWith([]);
  }

  /** The digest of the stable order followed by `tentative`: "<messages>:<hash>". */
  digestWith(tentative: readonly Message[]): string {
    // The tentative messages are chained as they will be once stable, so that the split does not matter.
    let chain = this.chain;
    let block = [...this.block];
    for (const m of tentative) {
      block.push(m);
      if (block.length < chainBlockMessages) continue;
      chain = hashOf(chain, block);
      block = [];
    }
    return `${this.stableCount + tentative.length}:${hashOf(chain, block).toString('hex', 0, 8)}`;
  }
}

function hashOf(chain: Buffer, block: readonly Message[]): Buffer {
  // The block as one text, hashed by one call: a call per message cost more than the hashing.
  let text = '';
  for (const m of block) text += `${m.sender}:${m.seq}:${m.ts}:${m.payload.length}:${m.payload}`;
  return createHash('sha256').update(chain).update(text).digest();
}

function isOrderDigestState(value: unknown): value is OrderDigestState {
  const v = value as { stableCount?: unknown; chain?: unknown; block?: unknown } | null;
  if (typeof v !== 'object' || v === null || !Number.isSafeInteger(v.stableCount) || typeof v.chain !== 'string' || !/^([0-9a-f]{64})?$/.test(v.chain)) return false;
  return v.block === undefined || (Array.isArray(v.block) && v.block.length < chainBlockMessages && v.block.every(isMessage));
}

function isMessage(value: unknown): value is Message {
  const m = value as Partial<Message> | null;
  return typeof m === 'object' && m !== null && Number.isSafeInteger(m.sender) && Number.isSafeInteger(m.seq) && Number.isSafeInteger(m.ts) && typeof m.payload === 'string';
}
