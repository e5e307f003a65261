/** The chat state machine as the daemon's replicated application. */
import { createHash } from 'node:crypto';
import type { OrderChange } from '../broadcast/orderedLog.js';
import type { Message, ServerId } from '../broadcast/types.js';
import { ChatReplica } from '../chat/replica.js';
import { canonicalJson, emptyChatState, restoreChatState, type ChatState } from '../chat/state.js';
import type { Application } from './application.js';

export class ChatApp implements Application {
  readonly replica: ChatReplica;
  private view: readonly ServerId[] = [];
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

  viewChanged(view: readonly ServerId[]): void {
    this.view = view;
    this.changed();
  }

  get currentView(): readonly ServerId[] {
    return this.view;
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

function isChatState(value: unknown): value is ChatState {
  const v = value as { groups?: unknown; sessions?: unknown } | null;
  return typeof v === 'object' && v !== null && typeof v.groups === 'object' && typeof v.sessions === 'object';
}
