/**
 * The chat state machine as a node's replicated application: the node feeds
 * it the total order; it keeps the shown and stable chat states (replica.ts)
 * and the stable history (historyStore.ts), tells listeners (the RPC
 * server's pushes) when what clients see may have changed, and digests and
 * snapshots the state.
 *
 * The digest is a hash chain over the order (node/application.ts): extended
 * by each stable message, continued over the tentative suffix when asked, so
 * it costs the new messages, never the history, and two servers holding the
 * same messages in the same order have the same digest, hence (the state
 * machine being deterministic) the same state.
 */
import type { OrderChange } from '../broadcast/orderedLog.js';
import type { Message } from '../broadcast/types.js';
import { OrderDigest, type Application } from '../node/application.js';
import { HistoryStore, type HistoryFiles } from './historyStore.js';
import { ChatReplica } from './replica.js';
import { compactState, emptyChatState, restoreChatState, type ChatState, type ChatStateJson } from './state.js';

/** What a snapshot holds: the stable state (each group's stored count, members, likes) and the chain over the stable order. */
export interface ChatSnapshot {
  readonly chat: ChatState;
  readonly order: ReturnType<OrderDigest['snapshot']>;
}

export class ChatApp implements Application {
  readonly replica: ChatReplica;
  private readonly order: OrderDigest;
  private readonly listeners = new Set<() => void>();
  private cachedDigest: string | undefined;

  /** The state of the last snapshot (undefined: none), its history in `files`. */
  constructor(saved: unknown, files: HistoryFiles) {
    const { chat, order } = readSnapshot(saved);
    const state = chat ? restoreChatState(chat) : emptyChatState;
    const store = HistoryStore.open(files, new Map(Object.values(state.groups).map((g) => [g.name, g.stored] as const)));
    // A snapshot's tails are stable messages its store counts did not include yet.
    for (const group of Object.values(state.groups)) for (const m of group.tail.all()) store.append(group.name, m);
    this.replica = new ChatReplica(
      compactState(state, Object.keys(state.groups), (group) => store.count(group)),
      store,
    );
    this.order = new OrderDigest(order);
  }

  get store(): HistoryStore {
    return this.replica.store;
  }

  apply(ordered: OrderChange | undefined, stable: readonly Message[]): void {
    this.replica.apply(ordered, stable);
    this.order.apply(undefined, stable);
    this.cachedDigest = undefined;
    // The replica applies lazily; listeners (pushes) read the shown state when they run. A stable point that moved changes what clients see too (stable marks).
    if (ordered || stable.length > 0) this.changed();
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

  /** The stable state, with what it stored made durable first: the snapshot counts on it. */
  snapshot(): ChatSnapshot {
    this.replica.compact();
    this.store.sync();
    return { chat: this.replica.stable, order: this.order.snapshot() };
  }

  /** "<messages in the order>:<chain>", over the stable order and the tentative suffix; cached until the order changes. */
  digest(): string {
    this.cachedDigest ??= this.order.digestWith(this.replica.tentative());
    return this.cachedDigest;
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}

/** A snapshot's chat part; one from before the history store is the chat state itself. */
function readSnapshot(saved: unknown): { chat?: ChatStateJson; order?: unknown } {
  const v = saved as { chat?: unknown; order?: unknown } | null;
  if (typeof v === 'object' && v !== null && isChatState(v.chat)) return { chat: v.chat, order: v.order };
  return isChatState(saved) ? { chat: saved } : {};
}

function isChatState(value: unknown): value is ChatStateJson {
  const v = value as { groups?: unknown; sessions?: unknown; requests?: unknown } | null;
  return typeof v === 'object' && v !== null && typeof v.groups === 'object' && typeof v.sessions === 'object' && (v.requests === undefined || typeof v.requests === 'object');
}
