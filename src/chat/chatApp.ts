/**
 * The chat state machine as a node's replicated application: the node feeds
 * it the total order; it keeps the shown and stable chat states (replica.ts),
 * tells listeners (the RPC server's pushes) when what clients see may have
 * changed, and digests and snapshots the state.
 */
import { createHash } from 'node:crypto';
import type { OrderChange } from '../broadcast/orderedLog.js';
import type { Message } from '../broadcast/types.js';
import type { Application } from '../node/application.js';
import { ChatReplica } from './replica.js';
import { canonicalJson, emptyChatState, restoreChatState, type ChatState, type ChatStateJson } from './state.js';

export class ChatApp implements Application {
  readonly replica: ChatReplica;
  private readonly listeners = new Set<() => void>();
  private digestOf: ChatState | undefined;
  private cachedDigest = '';

  constructor(saved: unknown) {
    this.replica = new ChatReplica(isChatState(saved) ? restoreChatState(saved) : emptyChatState);
  }

  apply(ordered: OrderChange | undefined, stable: readonly Message[]): void {
    this.replica.apply(ordered, stable);
    // The replica applies lazily; listeners (pushes) read the shown state when they run.
    if (ordered) this.changed();
  }

  /** Participants are the members joined through servers in the view: a view change changes them. */
  viewChanged(): void {
    this.changed();
  }

  /** Called after every change of the shown state or the view. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  snapshot(): unknown {
    return this.replica.stable;
  }

  /** Hash of the canonical JSON of the shown state; cached until the state changes (status is polled often). */
  digest(): string {
    const shown = this.replica.shown;
    if (this.digestOf !== shown) {
      this.cachedDigest = createHash('sha256').update(canonicalJson(shown)).digest('hex').slice(0, 16);
      this.digestOf = shown;
    }
    return this.cachedDigest;
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

function isChatState(value: unknown): value is ChatStateJson {
  const v = value as { groups?: unknown; sessions?: unknown } | null;
  return typeof v === 'object' && v !== null && typeof v.groups === 'object' && typeof v.sessions === 'object';
}
