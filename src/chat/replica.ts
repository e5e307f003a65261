/**
 * The chat state a daemon shows: the stable state (final) plus the
 * tentative suffix of the total order applied on top.
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
 * The history store is filled from a checkpoint's state: each group's
 * messages past what the store holds, up to the last stable message, are
 * appended in order. So the store holds exactly the history the state
 * machine built (an append retried with its request id whose original came
 * first never entered it), never a copy of the rule deciding that. The last
 * checkpoint nearly always covers the stable point (the shown state is read
 * every step); when a late message just dropped it, the store trails until
 * the next read or fold. Every so often (compact) the checkpoints' tails
 * give up what the store now holds, so memory holds the tentative suffix
 * and a bounded stretch of stable messages, not the history.
 */
import type { OrderChange } from '../broadcast/orderedLog.js';
import type { Message, MessageId } from '../broadcast/types.js';
import { invariant } from '../errors.js';
import type { HistoryStore } from './historyStore.js';
import { applyMessages, compactState, messageCount, operationOf, refusalOf, type ChatState, type OperationRefusal } from './state.js';

interface Checkpoint {
  /** How many messages of the total order the state has applied. */
  readonly at: number;
  readonly state: ChatState;
}

/** Stable messages held past the first checkpoint; past this many the stable state is brought up to date. */
const maxStableBehind = 4096;
/** Checkpoints kept in the tentative suffix; past this many every other one is dropped (a long partition). */
const maxCheckpoints = 64;
/** Checkpoints at the end never thinned out. */
const denseCheckpoints = 8;
/** Messages stored since the last compaction past which the checkpoints' tails are compacted. */
const compactAfterMessages = 4096;

export class ChatReplica {
  private checkpoints: Checkpoint[];
  private log: Message[] = [];
  private stableCount = 0;
  /** Where the shown state was last read: messages before it rebuilt again count as reapplied. */
  private shownAt = 0;
  /** Messages applied again to rebuild the shown state after late messages landed before them. */
  reapplied = 0;
  /** Operations whose stable outcome someone waits for, by "<sender>:<seq>". */
  private readonly watched = new Map<string, (refusal: OperationRefusal | undefined) => void>();
  /** Groups with stable appends not in the history store yet, each with the order position of its last one. */
  private readonly unstored = new Map<string, number>();
  /** Groups that gained stored messages since the last compaction, and how many messages. */
  private readonly storedGroups = new Set<string>();
  private storedSince = 0;

  constructor(
    stable: ChatState,
    readonly store: HistoryStore,
  ) {
    this.checkpoints = [{ at: 0, state: stable }];
  }

  /** The state after every stable message. */
  get stable(): ChatState {
    return this.foldStable();
  }

  /** Make the first checkpoint the stable state itself. */
  private foldStable(): ChatState {
    const first = this.checkpoints[0];
    if (first.at === this.stableCount) return first.state;
    const behind = this.stableCount - first.at;
    const state = applyMessages(first.state, this.log.slice(0, behind), this.store);
    this.log.splice(0, behind);
    this.checkpoints[0] = { at: this.stableCount, state };
    this.storeStable();
    return state;
  }

  /** The state after every message of the order, stable and tentative. */
  get shown(): ChatState {
    const end = this.end;
    if (this.lastCheckpoint.at === end) return this.lastCheckpoint.state;
    this.reapplied += Math.max(0, this.shownAt - this.lastCheckpoint.at);
    this.shownAt = end;
    // Rebuilding from the stable state: the stable messages first, into it, so that no later rebuild applies them again.
    if (this.checkpoints.length === 1) this.foldStable();
    const last = this.lastCheckpoint;
    if (last.at === end) return last.state;
    const state = applyMessages(last.state, this.log.slice(last.at - this.base), this.store);
    this.checkpoints.push({ at: end, state });
    if (this.checkpoints.length > maxCheckpoints) this.thinCheckpoints();
    return state;
  }

  private get lastCheckpoint(): Checkpoint {
    return this.checkpoints[this.checkpoints.length - 1];
  }

  /** The tentative suffix of the order. */
  tentative(): Message[] {
    return this.log.slice(this.stableCount - this.base);
  }

  get tentativeCount(): number {
    return this.end - this.stableCount;
  }

  /** The tentative order's change, then the newly stable messages (a prefix of the changed order). */
  apply(ordered: OrderChange | undefined, stable: readonly Message[]): void {
    if (ordered) this.reorder(ordered);
    if (stable.length > 0) this.stabilise(stable);
  }

  /** Position in the total order of log[0]. */
  private get base(): number {
    return this.checkpoints[0].at;
  }

  private get end(): number {
    return this.base + this.log.length;
  }

  private reorder({ from, messages }: OrderChange): void {
    invariant(from <= this.tentativeCount, `the order changed at position ${from}, past the ${this.tentativeCount} tentative messages`);
    const at = this.stableCount + from;
    this.log.length = at - this.base;
    for (const m of messages) this.log.push(m);
    while (this.lastCheckpoint.at > at) this.checkpoints.pop();
  }

  /** Call `done` with the operation's outcome once message m is stable: undefined if it took effect, else the rule it broke. */
  watchStable(m: Message, done: (refusal: OperationRefusal | undefined) => void): void {
    this.watched.set(`${m.sender}:${m.seq}`, done);
  }

  private stabilise(stable: readonly Message[]): void {
    const offset = this.stableCount - this.base;
    for (let i = 0; i < stable.length; i++) {
      const m = this.log[offset + i];
      invariant(m !== undefined && m.sender === stable[i].sender && m.seq === stable[i].seq, `stable message ${stable[i].sender}:${stable[i].seq} is not next in order`);
    }
    if (this.watched.size > 0) this.reportOutcomes(stable);
    this.noteUnstored(stable, this.stableCount);
    this.stableCount += stable.length;
    // The latest checkpoint the stable point has reached becomes the first; the log before it is no longer needed.
    let passed = 0;
    while (passed + 1 < this.checkpoints.length && this.checkpoints[passed + 1].at <= this.stableCount) passed++;
    if (passed > 0) {
      this.log.splice(0, this.checkpoints[passed].at - this.base);
      this.checkpoints.splice(0, passed);
    }
    this.storeStable();
    if (this.stableCount - this.base >= maxStableBehind) this.foldStable();
    if (this.storedSince >= compactAfterMessages) this.compact();
  }

  /**
   * The outcome of each watched message among the newly stable ones, judged
   * against the stable state just before it: final, as the order before it
   * is. Costs an extra pass over the batch only when someone waits.
   */
  private reportOutcomes(stable: readonly Message[]): void {
    if (!stable.some((m) => this.watched.has(`${m.sender}:${m.seq}`))) return;
    let state = this.foldStable();
    for (const m of stable) {
      const key = `${m.sender}:${m.seq}`;
      const done = this.watched.get(key);
      if (done) {
        this.watched.delete(key);
        done(refusalOf(state, m, this.store));
      }
      state = applyMessages(state, [m], this.store);
    }
  }

  /** Note the groups the newly stable messages (from order position `at` on) append to. */
  private noteUnstored(stable: readonly Message[], at: number): void {
    for (let i = 0; i < stable.length; i++) {
      const op = operationOf(stable[i]);
      if (op?.op === 'append') this.unstored.set(op.group, at + i);
    }
  }

  /** Append to the history store the stable messages a checkpoint's state holds past it: the last checkpoint's, up to the stable point. */
  private storeStable(): void {
    if (this.unstored.size === 0) return;
    const last = this.lastCheckpoint;
    // Only the first checkpoint can be at or before the stable point: all of its messages are stable.
    if (last.at <= this.stableCount) return this.storeFrom(last.state, last.at);
    if (this.stableCount === this.base) return this.storeFrom(this.checkpoints[0].state, this.base);
    this.storeFrom(last.state, this.stableCount, this.log[this.stableCount - 1 - this.base]);
  }

  /** Each unstored group's messages in `state` past what the store holds, up to order position `upTo` (up to message `bound`, when the state holds more). */
  private storeFrom(state: ChatState, upTo: number, bound?: MessageId): void {
    for (const [name, last] of this.unstored) {
      const group = state.groups[name];
      const from = this.store.count(name);
      const to = group && bound ? group.stored + group.tail.countUpTo(bound) : messageCount(group);
      if (to > from) {
        for (const m of group.tail.slice(from - group.stored, to - group.stored)) this.store.append(name, m);
        this.storedGroups.add(name);
        this.storedSince += to - from;
      }
      if (last < upTo) this.unstored.delete(name);
    }
  }

  /** Bring the stable state up to date, then move what the store holds out of every checkpoint's tails (each state still reads the same messages). */
  compact(): void {
    this.foldStable();
    const count = (group: string) => this.store.count(group);
    this.checkpoints = this.checkpoints.map(({ at, state }) => ({ at, state: compactState(state, this.storedGroups, count) }));
    this.storedGroups.clear();
    this.storedSince = 0;
  }

  /** Keep the first, the last few (late messages land near the end) and every other one between. */
  private thinCheckpoints(): void {
    const lastFew = this.checkpoints.length - denseCheckpoints;
    this.checkpoints = this.checkpoints.filter((_, i) => i === 0 || i >= lastFew || i % 2 === 0);
  }
}
