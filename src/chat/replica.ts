/**
 * The chat state a daemon shows: the stable state (final) plus the
 * tentative suffix of the total order applied on top. New messages usually
 * land at the end of the order and are applied incrementally; when one lands
 * before tentative ones (after a partition heals, say), the shown state is
 * recomputed from the stable state, once per batch however many arrived.
 */
import type { Message } from '../broadcast/types.js';
import { compareOrder } from '../broadcast/types.js';
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

  /** New messages in the total order and newly stable ones (a prefix of the tentative order). */
  apply(ordered: readonly Message[], stable: readonly Message[]): void {
    let replay = false;
    const appended: Message[] = [];
    for (const m of ordered) {
      const last = this.tentative[this.tentative.length - 1];
      if (last && compareOrder(last, m) >= 0) replay = true;
      this.tentative.push(m);
      if (!replay) appended.push(m);
    }
    // Late messages were appended out of order: one sort puts them in place, however many came.
    if (replay) this.tentative.sort(compareOrder);
    if (stable.length > 0) {
      for (let i = 0; i < stable.length; i++) {
        const m = this.tentative[i];
        invariant(m !== undefined && m.sender === stable[i].sender && m.seq === stable[i].seq, `stable message ${stable[i].sender}:${stable[i].seq} is not next in order`);
      }
      this.tentative.splice(0, stable.length);
      this.pendingStable.push(...stable);
    }
    if (replay) {
      this.replayDue = true;
      this.pendingShown = [];
    } else if (appended.length > 0 && !this.replayDue) {
      this.pendingShown.push(...appended);
    }
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
