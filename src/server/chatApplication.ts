/**
 * The chat state machine as a node's replicated application: the node feeds
 * it the total order; the replica (chat/replica.ts, pure) keeps the shown
 * and stable chat states and says what to store and whose outcome is final;
 * this class owns the history files (historyStore.ts) and acts on what the
 * replica says: it looks up the stored messages likes name before a change,
 * appends the stable history after it, answers the watchers, tells
 * listeners (the RPC server's pushes) that what clients see may have
 * changed, and digests and snapshots the state.
 *
 * The digest is a hash chain over the order (node/application.ts): extended
 * by each stable message, continued over the tentative suffix when asked, so
 * it costs the new messages, never the history, and two servers holding the
 * same messages in the same order have the same digest, hence (the state
 * machine being deterministic) the same state.
 */
import type { OrderChange } from '../broadcast/tentativeOrder.js';
import type { Message, MessageId } from '../broadcast/types.js';
import { targetKey, type StoredTarget } from '../chat/likes.js';
import { compactState, type ChatState } from '../chat/model.js';
import { operationOf, type ChatOp } from '../chat/operations.js';
import { ChatReplica, type StoredAppend } from '../chat/replica.js';
import { judge, type Judgement, type OperationRefusal } from '../chat/rules.js';
import { chatSnapshotVersion, readChatSnapshot, type ChatSnapshot } from '../chat/snapshot.js';
import { ChorusError } from '../errors.js';
import { OrderDigest, type Application } from '../node/application.js';
import type { DurableWhen } from '../node/ports.js';
import { HistoryStore, type HistoryFiles } from './historyStore.js';

/** What changed for clients: the order (messages added or moved), only the stable point (stable marks), or the view (participants). */
export type ChatChange = 'order' | 'stable' | 'view';

export class ChatApplication implements Application {
  readonly replica: ChatReplica;
  readonly store: HistoryStore;
  private readonly order: OrderDigest;
  private readonly listeners = new Set<(change: ChatChange) => void>();
  /** Who waits for each watched operation's outcome, by "<sender>:<seq>". */
  private readonly watchers = new Map<string, (refusal: OperationRefusal | undefined) => void>();
  private cachedDigest: string | undefined;

  /** The state of the last snapshot (undefined: none), its history in `files`. */
  constructor(saved: unknown, files: HistoryFiles) {
    const read = readChatSnapshot(saved);
    if (read instanceof Error) throw new ChorusError('LOG_CORRUPT', `${files.dir}: ${read.message}`);
    const { chat, order } = read;
    this.store = HistoryStore.open(files, new Map(Object.values(chat.groups).map((g) => [g.name, g.stored] as const)));
    // A snapshot's tails are stable messages its store counts did not include yet.
    for (const group of Object.values(chat.groups)) for (const m of group.tail.all()) this.store.append(group.name, m);
    this.replica = new ChatReplica(compactState(chat, Object.keys(chat.groups), (group) => this.store.count(group)));
    this.order = new OrderDigest(order);
  }

  apply(ordered: OrderChange | undefined, stable: readonly Message[]): void {
    const effects = this.replica.apply(ordered, stable, ordered ? this.storedTargets(ordered.added) : []);
    this.write(effects.store);
    for (const { message, refusal } of effects.outcomes) {
      const key = `${message.sender}:${message.seq}`;
      this.watchers.get(key)?.(refusal);
      this.watchers.delete(key);
    }
    this.order.apply(undefined, stable);
    this.cachedDigest = undefined;
    // The replica applies lazily; listeners (pushes) read the shown state when they run. A stable point that moved changes what clients see too (stable marks).
    if (ordered) this.changed('order');
    else if (stable.length > 0) this.changed('stable');
  }

  /** The state clients are shown: stable, then tentative, in the total order. */
  shown(): ChatState {
    return this.replica.shown();
  }

  /** What the judge says of `op` on the shown state now (the RPC service refuses early what it would refuse). */
  judge(op: ChatOp): Judgement {
    const targets = new Map<string, StoredTarget>();
    if (op.op === 'like' || op.op === 'unlike') this.lookUp(op.group, op.message, targets);
    return judge(this.shown(), op, targets);
  }

  /** Call `done` with the operation's outcome once message m is stable: undefined if it took effect, else the rule it broke. */
  whenStable(m: Message, done: (refusal: OperationRefusal | undefined) => void): void {
    this.watchers.set(`${m.sender}:${m.seq}`, done);
    this.replica.watch(m);
  }

  /** Participants are the members joined through servers in the view: a view change changes them. */
  viewChanged(): void {
    this.changed('view');
  }

  /** Called after every change of the shown state (its order, or only which messages are stable) or of the view. */
  onChange(listener: (change: ChatChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The stable state, with what it stored made durable first: the snapshot counts on it. */
  snapshot(): ChatSnapshot {
    this.write(this.replica.compact());
    this.store.sync();
    return this.stableSnapshot();
  }

  private stableSnapshot(): ChatSnapshot {
    return { version: chatSnapshotVersion, chat: this.replica.stableState(), order: this.order.snapshot() };
  }

  /** The stable state at once; what it stored is made durable off the event loop (the snapshot waits for it). */
  snapshotInBackground(): { state: ChatSnapshot; durable: DurableWhen } {
    this.write(this.replica.compact());
    this.store.flush();
    return { state: this.stableSnapshot(), durable: (ready) => this.store.syncInBackground(ready) };
  }

  /** "<messages in the order>:<chain>", over the stable order and the tentative suffix; cached until the order changes. */
  digest(): string {
    this.cachedDigest ??= this.order.digestWith(this.replica.tentative());
    return this.cachedDigest;
  }

  private write(store: readonly StoredAppend[]): void {
    for (const { group, messages } of store) for (const m of messages) this.store.append(group, m);
  }

  /** The stored messages that the likes among `added` (new to the order) name. */
  private storedTargets(added: readonly Message[]): Map<string, StoredTarget> {
    const targets = new Map<string, StoredTarget>();
    for (const m of added) {
      const op = operationOf(m);
      if (op?.op === 'like' || op?.op === 'unlike') this.lookUp(op.group, op.message, targets);
    }
    return targets;
  }

  private lookUp(group: string, id: MessageId, targets: Map<string, StoredTarget>): void {
    const found = this.store.find(group, id, this.store.count(group));
    if (found) targets.set(targetKey(group, id), { index: found.index, user: found.message.user });
  }

  private changed(change: ChatChange): void {
    for (const listener of this.listeners) listener(change);
  }
}
