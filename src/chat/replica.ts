/**
 * The chat state a daemon shows: the stable state (final) plus the
 * tentative suffix of the total order applied on top.
 *
 * Invariant: `tentative` mirrors the engine's tentative order exactly (the
 * engine reports each change as the suffix from its first changed position,
 * so nothing is sorted here), and the shown state is the stable state with
 * `tentative` applied in order. New messages usually land at the end and are
 * applied incrementally; when one lands before tentative ones (after a
 * partition heals, say), the shown state is recomputed from the stable
 * state, once when next read however many landed.
 */
import type { OrderChange } from '../broadcast/orderedLog.js';
import type { Message } from '../broadcast/types.js';
import { invariant } from '../errors.js';
import { applyMessages, emptyChatState, type ChatState } from './state.js';

/** Stable messages waiting to be folded into the stable state; past this many they are applied at once. */
const maxPendingStable = 4096;

export class ChatReplica {
  private stableState: ChatState;
  private shownState: ChatState;
  private tentative: Message[] = [];
  /**
   * Newly stable messages not yet applied to the stable state. The shown
   * state already contains them, so the stable state is brought up to date
   * only when it is needed (a replay, a snapshot) or the backlog is long,
   * and for free whenever nothing is tentative (then it equals the shown state).
   */
  private pendingStable: Message[] = [];
  /** New messages at the end of the order not yet applied to the shown state: applied when it is next read, in one batch. */
  private pendingShown: Message[] = [];
  /** A late message landed inside the tentative suffix: the shown state is recomputed when next read (once, however many landed). */
  private replayDue = false;
  /** How many times the shown state was recomputed from the stable state. */
  replays = 0;

  constructor(stable: ChatState = emptyChatState) {
    this.stableState = stable;
    this.shownState = stable;
  }

  get stable(): ChatState {
    this.foldStable();
    return this.stableState;
  }

  get shown(): ChatState {
    if (this.replayDue) {
      this.replayDue = false;
      this.replays++;
      this.stableState = applyMessages(this.stableState, this.pendingStable);
      this.pendingStable = [];
      this.shownState = applyMessages(this.stableState, this.tentative);
      this.pendingShown = [];
    }
    if (this.pendingShown.length > 0) {
      this.shownState = applyMessages(this.shownState, this.pendingShown);
      this.pendingShown = [];
      if (this.tentative.length === 0) {
        this.stableState = this.shownState;
        this.pendingStable = [];
      }
    }
    return this.shownState;
  }

  get tentativeCount(): number {
    return this.tentative.length;
  }

  /** The tentative order's change, then the newly stable messages (a prefix of the changed order). */
  apply(ordered: OrderChange | undefined, stable: readonly Message[]): void {
    if (ordered) this.reorder(ordered);
    if (stable.length > 0) this.stabilise(stable);
    if (this.replayDue) {
      // The stable prefix may have grown past the late messages; the replay folds it when it runs.
      if (this.pendingStable.length >= maxPendingStable) {
        this.stableState = applyMessages(this.stableState, this.pendingStable);
        this.pendingStable = [];
      }
      return;
    }
    if (this.tentative.length === 0 && this.pendingShown.length === 0) {
      this.stableState = this.shownState;
      this.pendingStable = [];
    } else if (this.pendingStable.length >= maxPendingStable) {
      this.foldStable();
    }
  }

  private reorder({ from, messages }: OrderChange): void {
    invariant(from <= this.tentative.length, `the order changed at position ${from}, past the ${this.tentative.length} tentative messages`);
    const appended = from === this.tentative.length;
    if (!appended) this.tentative.length = from;
    for (const m of messages) this.tentative.push(m);
    if (!appended) {
      this.replayDue = true;
      this.pendingShown = [];
    } else if (!this.replayDue) {
      for (const m of messages) this.pendingShown.push(m);
    }
  }

  private stabilise(stable: readonly Message[]): void {
    for (let i = 0; i < stable.length; i++) {
      const m = this.tentative[i];
      invariant(m !== undefined && m.sender === stable[i].sender && m.seq === stable[i].seq, `stable message ${stable[i].sender}:${stable[i].seq} is not next in order`);
    }
    this.tentative.splice(0, stable.length);
    for (const m of stable) this.pendingStable.push(m);
  }

  /** Bring the stable state up to date; only while the shown state (with pendingShown) is current. */
  private foldStable(): void {
    if (this.pendingStable.length === 0) return;
    if (this.replayDue) {
      this.stableState = applyMessages(this.stableState, this.pendingStable);
      this.pendingStable = [];
      return;
    }
    if (this.tentative.length === 0) {
      // Everything is stable: the shown state (brought up to date) is the stable state.
      this.stableState = this.shown;
      this.pendingStable = [];
      return;
    }
    this.stableState = applyMessages(this.stableState, this.pendingStable);
    this.pendingStable = [];
  }
}
