/**
 * The chat state a daemon shows: the stable state (final) plus the
 * tentative suffix of the total order applied on top. Pure: it is handed
 * the order as it changes and hands back effects (the stable messages to
 * store, the outcomes of the operations watched); it reads and writes no
 * files, and reading a state has no effect but to apply what it needs.
 *
 * Invariants: `log` holds the total order from `checkpoints[0].at` to its
 * end (the engine reports each change as the suffix from its first changed
 * position, so nothing is sorted here); `stableCount` messages of the order
 * are stable. A checkpoint is the (immutable) state after the first `at`
 * messages of the current order: the first is at or before the stable
 * point, the others are after it, ascending, none past the end of the order.
 *
 * So each message is applied once, in the batch that reads the shown state
 * after it arrived. The stable state is a checkpoint the stable point passed
 * (plus the few stable messages after it, applied when the stable state is
 * read), not a second copy of the work. A message that lands inside the
 * tentative suffix (another sender's, a little late) drops the checkpoints
 * after it, and the shown state is rebuilt from the one before it: from the
 * previous step's, in steady state, not from the stable state.
 *
 * What to store is read from a checkpoint's state: each group's messages
 * past what was stored, up to the last stable message. So the history store
 * holds exactly the history the state machine built (an append retried with
 * its request id whose original came first never enters it). Every so often
 * (compact) the checkpoints' tails give up what has been stored, so memory
 * holds the tentative suffix and a bounded stretch of stable messages, not
 * the history.
 */
import type { OrderChange } from '../broadcast/tentativeOrder.js';
import type { Message, MessageId } from '../broadcast/types.js';
import { invariant, InvariantError } from '../errors.js';
import { targetKey, type StoredTarget } from './likes.js';
import { compactState, messageCount, type ChatState } from './model.js';
import { operationOf } from './operations.js';
import { applyBatch } from './reducer.js';
import type { OperationRefusal } from './rules.js';
import type { ChatMessage } from './tail.js';

/** Stable messages of one group to append to the history store, in order. */
export interface StoredAppend {
  readonly group: string;
  readonly messages: readonly ChatMessage[];
}

/** A watched operation, now stable, and its final outcome: undefined if it took effect, else the rule it broke. */
export interface Outcome {
  readonly message: Message;
  readonly refusal: OperationRefusal | undefined;
}

/**
 * What the caller does after a change, in this order: append `store` to the
 * history store (before anything reads the stored history again), then tell
 * the watchers their `outcomes`.
 */
export interface ReplicaEffects {
  readonly store: StoredAppend[];
  readonly outcomes: Outcome[];
}

interface Checkpoint {
  /** How many messages of the total order the state has applied. */
  readonly at: number;
  readonly state: ChatState;
}

/**
 * Stable messages held past the first checkpoint; past this many the stable
 * state is brought up to date. Small, because they are applied in one step:
 * when nobody reads the shown state (a flood from clients without pushes)
 * every message reaches the state this way, and 4,096 at once took 27-100
 * ms of a step.
 */
const maxStableBehind = 512;
/** Checkpoints kept in the tentative suffix; past this many every other one is dropped (a long partition). */
const maxCheckpoints = 64;
/** Checkpoints at the end never thinned out. */
const denseCheckpoints = 8;
/** Messages stored since the last compaction past which the checkpoints' tails are compacted. */
const compactAfterMessages = 4096;

export class ChatReplica {
  private checkpoints: Checkpoint[];
  /** The total order from checkpoints[0].at on. */
  private order: Message[] = [];
  private stableCount = 0;
  /** Where the shown state was last read: messages before it rebuilt again count as reapplied. */
  private shownAt = 0;
  /** Messages applied again to rebuild the shown state after late messages landed before them. */
  reapplied = 0;
  /** Operations whose stable outcome someone waits for, by "<sender>:<seq>". */
  private readonly watched = new Set<string>();
  /** Messages each group has in the history store (as this replica had them stored). */
  private readonly storedCounts = new Map<string, number>();
  /** Groups with stable appends not stored yet, each with the order position of its last one. */
  private readonly unstored = new Map<string, number>();
  /** Groups that gained stored messages since the last compaction, and how many messages. */
  private readonly storedGroups = new Set<string>();
  private storedSince = 0;
  /** Stored messages that likes in the order name (likes.ts: StoredTarget), by targetKey. */
  private storedTargets = new Map<string, StoredTarget>();

  /** Start from the stable state of a snapshot whose groups' tails are all stored. */
  constructor(stable: ChatState) {
    for (const group of Object.values(stable.groups)) {
      invariant(group.tail.count === 0, `group ${group.name} starts with unstored messages`);
      this.storedCounts.set(group.name, group.stored);
    }
    this.checkpoints = [{ at: 0, state: stable }];
  }

  /** Messages of `group` stored so far. */
  storedCount(group: string): number {
    return this.storedCounts.get(group) ?? 0;
  }

  /** The state after every stable message. */
  stableState(): ChatState {
    return this.foldStable();
  }

  /** The state after every message of the order, stable and tentative. */
  shown(): ChatState {
    const end = this.end;
    if (this.lastCheckpoint.at === end) return this.lastCheckpoint.state;
    this.reapplied += Math.max(0, this.shownAt - this.lastCheckpoint.at);
    this.shownAt = end;
    // Rebuilding from the stable state: the stable messages first, into it, so that no later rebuild applies them again.
    if (this.checkpoints.length === 1) this.foldStable();
    const last = this.lastCheckpoint;
    if (last.at === end) return last.state;
    const state = this.applied(last.state, this.order.slice(last.at - this.base));
    this.checkpoints.push({ at: end, state });
    if (this.checkpoints.length > maxCheckpoints) this.thinCheckpoints();
    return state;
  }

  /** The tentative suffix of the order. */
  tentative(): Message[] {
    return this.order.slice(this.stableCount - this.base);
  }

  get tentativeCount(): number {
    return this.end - this.stableCount;
  }

  /** Report the outcome of message m (an operation submitted here) in the effects of the change that makes it stable. */
  watch(m: Message): void {
    this.watched.add(`${m.sender}:${m.seq}`);
  }

  /**
   * The tentative order's change, then the newly stable messages (a prefix
   * of the changed order); `targets` are the stored messages that the likes
   * among the changed messages name (looked up by whoever holds the store).
   */
  apply(ordered: OrderChange | undefined, stable: readonly Message[], targets: Iterable<readonly [string, StoredTarget]> = []): ReplicaEffects {
    for (const [key, target] of targets) this.storedTargets.set(key, target);
    const effects: ReplicaEffects = { store: [], outcomes: [] };
    if (ordered) this.reorder(ordered);
    if (stable.length > 0) this.stabilise(stable, effects);
    return effects;
  }

  /** Bring the stable state up to date and store what it holds, then move what is stored out of every checkpoint's tails (each state still means the same messages). */
  compact(): StoredAppend[] {
    this.foldStable();
    const store: StoredAppend[] = [];
    this.storeStable(store);
    this.compactCheckpoints();
    return store;
  }

  // ---- the order -------------------------------------------------------------------

  /** Position in the total order of order[0]. */
  private get base(): number {
    return this.checkpoints[0].at;
  }

  private get end(): number {
    return this.base + this.order.length;
  }

  private get lastCheckpoint(): Checkpoint {
    return this.checkpoints[this.checkpoints.length - 1];
  }

  private applied(state: ChatState, messages: readonly Message[]): ChatState {
    return applyBatch(state, messages, this.storedTargets).state;
  }

  private reorder({ from, messages }: OrderChange): void {
    invariant(from <= this.tentativeCount, `the order changed at position ${from}, past the ${this.tentativeCount} tentative messages`);
    const at = this.stableCount + from;
    this.order.length = at - this.base;
    for (const m of messages) this.order.push(m);
    while (this.lastCheckpoint.at > at) this.checkpoints.pop();
  }

  /** Make the first checkpoint the stable state itself. */
  private foldStable(): ChatState {
    const first = this.checkpoints[0];
    if (first.at === this.stableCount) return first.state;
    const behind = this.stableCount - first.at;
    const state = this.applied(first.state, this.order.slice(0, behind));
    this.order.splice(0, behind);
    this.checkpoints[0] = { at: this.stableCount, state };
    return state;
  }

  private stabilise(stable: readonly Message[], effects: ReplicaEffects): void {
    const offset = this.stableCount - this.base;
    for (let i = 0; i < stable.length; i++) {
      const m = this.order[offset + i];
      // Per message: the text is built only if it fails.
      if (m === undefined || m.sender !== stable[i].sender || m.seq !== stable[i].seq) throw new InvariantError(`stable message ${stable[i].sender}:${stable[i].seq} is not next in order`);
    }
    if (this.watched.size > 0) this.reportOutcomes(stable, effects.outcomes);
    this.noteUnstored(stable, this.stableCount);
    this.stableCount += stable.length;
    // The latest checkpoint the stable point has reached becomes the first; the order before it is no longer needed.
    let passed = 0;
    while (passed + 1 < this.checkpoints.length && this.checkpoints[passed + 1].at <= this.stableCount) passed++;
    if (passed > 0) {
      this.order.splice(0, this.checkpoints[passed].at - this.base);
      this.checkpoints.splice(0, passed);
    }
    if (this.stableCount - this.base >= maxStableBehind) this.foldStable();
    this.storeStable(effects.store);
    if (this.storedSince >= compactAfterMessages) this.compactCheckpoints();
  }

  /**
   * The outcome of each watched message among the newly stable ones, as the
   * judge said when the batch was applied to the stable state just before
   * it: final, as the order before it is. Costs an extra pass over the batch
   * only when someone waits.
   */
  private reportOutcomes(stable: readonly Message[], outcomes: Outcome[]): void {
    if (!stable.some((m) => this.watched.has(`${m.sender}:${m.seq}`))) return;
    const { refusals } = applyBatch(this.foldStable(), stable, this.storedTargets);
    stable.forEach((message, i) => {
      if (this.watched.delete(`${message.sender}:${message.seq}`)) outcomes.push({ message, refusal: refusals[i] });
    });
  }

  // ---- the history store ---------------------------------------------------------

  /** Note the groups the newly stable messages (from order position `at` on) append to. */
  private noteUnstored(stable: readonly Message[], at: number): void {
    for (let i = 0; i < stable.length; i++) {
      const op = operationOf(stable[i]);
      if (op?.op === 'append') this.unstored.set(op.group, at + i);
    }
  }

  /** The stable messages a checkpoint's state holds past what is stored: the last checkpoint's, up to the stable point. */
  private storeStable(store: StoredAppend[]): void {
    if (this.unstored.size === 0) return;
    const last = this.lastCheckpoint;
    // Only the first checkpoint can be at or before the stable point: all of its messages are stable.
    if (last.at <= this.stableCount) return this.storeFrom(last.state, last.at, undefined, store);
    if (this.stableCount === this.base) return this.storeFrom(this.checkpoints[0].state, this.base, undefined, store);
    this.storeFrom(last.state, this.stableCount, this.order[this.stableCount - 1 - this.base], store);
  }

  /** Each unstored group's messages in `state` past what is stored, up to order position `upTo` (up to message `bound`, when the state holds more). */
  private storeFrom(state: ChatState, upTo: number, bound: MessageId | undefined, store: StoredAppend[]): void {
    for (const [name, last] of this.unstored) {
      const group = state.groups[name];
      const from = this.storedCount(name);
      const to = group && bound ? group.stored + group.tail.countUpTo(bound) : messageCount(group);
      if (to > from) {
        store.push({ group: name, messages: group.tail.slice(from - group.stored, to - group.stored) });
        this.storedCounts.set(name, to);
        this.storedGroups.add(name);
        this.storedSince += to - from;
      }
      if (last < upTo) this.unstored.delete(name);
    }
  }

  /**
   * Move what is stored out of every checkpoint's tails. A like in the order
   * may name a message about to leave the tails: it is kept among the stored
   * targets first (and those no like in the order names are forgotten).
   */
  private compactCheckpoints(): void {
    this.keepStoredTargets();
    const count = (group: string) => this.storedCount(group);
    this.checkpoints = this.checkpoints.map(({ at, state }) => ({ at, state: compactState(state, this.storedGroups, count) }));
    this.storedGroups.clear();
    this.storedSince = 0;
  }

  private keepStoredTargets(): void {
    const kept = new Map<string, StoredTarget>();
    const state = this.lastCheckpoint.state;
    for (const m of this.order) {
      const op = operationOf(m);
      if (op?.op !== 'like' && op?.op !== 'unlike') continue;
      const key = targetKey(op.group, op.message);
      const known = this.storedTargets.get(key) ?? this.leavingTail(state, op.group, op.message);
      if (known) kept.set(key, known);
    }
    this.storedTargets = kept;
  }

  /** The message, if it is in the group's tail in `state` and stored (so about to leave the tail). */
  private leavingTail(state: ChatState, name: string, id: MessageId): StoredTarget | undefined {
    const group = state.groups[name];
    const found = group?.tail.find(id);
    if (!found || group.stored + found.index >= this.storedCount(name)) return undefined;
    return { index: group.stored + found.index, user: found.message.user };
  }

  /** Keep the first, the last few (late messages land near the end) and every other one between. */
  private thinCheckpoints(): void {
    const lastFew = this.checkpoints.length - denseCheckpoints;
    this.checkpoints = this.checkpoints.filter((_, i) => i === 0 || i >= lastFew || i % 2 === 0);
  }
}
