/**
 * Recovery: the protocol state after a snapshot and the journal written
 * after it, folded record by record exactly as the engine produced them.
 *
 * Invariant: the state replayed is the state the engine had when it wrote
 * the last durable record: every message in sender order with no gap, none
 * at or behind the stable point, each sender's timestamps increasing; the
 * clock at least every timestamp journaled, and moved past every accepted
 * peer message as the engine moved it. A record that breaks this was not
 * written by a correct engine: recovery names it and stops.
 */
import type { JournalRecord, Message } from './types.js';

/** The protocol state saved in a snapshot; with the journal after it, enough to rebuild the engine exactly. */
export interface EngineState {
  readonly lastSeq: number;
  readonly contiguous: number[];
  readonly tsVector: number[];
  readonly seqMatrix: number[][];
  readonly tsMatrix: number[][];
  /** Highest garbage-collected seq per sender. */
  readonly collectedUpTo: number[];
  /** The stable point applied to the application: every message with ts <= stableTs is in its state. */
  readonly stableTs: number;
  /** The retransmission store: every message not yet collected, per sender in seq order. */
  readonly messages: Message[];
}

export type Replayed = { readonly state: EngineState } | { readonly badRecord: number; readonly reason: string };

export function emptyEngineState(serverCount: number): EngineState {
  const zeros = () => new Array<number>(serverCount).fill(0);
  return {
    lastSeq: 0,
    contiguous: zeros(),
    tsVector: zeros(),
    seqMatrix: Array.from({ length: serverCount }, zeros),
    tsMatrix: Array.from({ length: serverCount }, zeros),
    collectedUpTo: zeros(),
    stableTs: 0,
    messages: [],
  };
}

/** Fold the journal into the snapshot's state (or the empty state), for server `me` of `serverCount`. */
export function replayJournal(me: number, serverCount: number, saved: EngineState | undefined, records: readonly JournalRecord[]): Replayed {
  const base = saved ?? emptyEngineState(serverCount);
  const state = {
    lastSeq: base.lastSeq,
    contiguous: [...base.contiguous],
    tsVector: [...base.tsVector],
    seqMatrix: base.seqMatrix.map((row) => [...row]),
    tsMatrix: base.tsMatrix.map((row) => [...row]),
    collectedUpTo: [...base.collectedUpTo],
    stableTs: base.stableTs,
    messages: [...base.messages],
  };
  const lastTs = new Array<number>(serverCount).fill(0);
  for (const m of state.messages) lastTs[m.sender - 1] = Math.max(lastTs[m.sender - 1], m.ts);
  const raise = (vector: number[], values: readonly number[]) => values.forEach((v, i) => (vector[i] = Math.max(vector[i], v)));

  const replayMessage = (m: Message): string | undefined => {
    if (m.sender < 1 || m.sender > serverCount) return `message from unknown server ${m.sender}`;
    const i = m.sender - 1;
    const next = state.contiguous[i] + 1;
    if (m.seq !== next) return `message ${m.sender}:${m.seq} out of sequence (expected seq ${next})`;
    if (m.ts <= state.stableTs) return `message ${m.sender}:${m.seq} has ts ${m.ts} at or before the stable point ${state.stableTs}`;
    if (m.ts <= lastTs[i]) return `message ${m.sender}:${m.seq} has ts ${m.ts}, not after the sender's previous message`;
    const clock = me - 1;
    if (m.sender === me) {
      state.lastSeq = m.seq;
      state.tsVector[clock] = Math.max(state.tsVector[clock], m.ts);
    } else {
      state.tsVector[clock] = Math.max(state.tsVector[clock], m.ts) + 1;
      state.tsVector[i] = Math.max(state.tsVector[i], m.ts);
    }
    state.contiguous[i] = m.seq;
    lastTs[i] = m.ts;
    state.messages.push(m);
    return undefined;
  };

  for (let r = 0; r < records.length; r++) {
    const record = records[r];
    let reason: string | undefined;
    if (record.t === 'msg') {
      reason = replayMessage(record.m);
    } else if (record.t === 'ts') {
      if (record.tsVector.length !== serverCount) reason = `timestamp vector has ${record.tsVector.length} entries, expected ${serverCount}`;
      else raise(state.tsVector, record.tsVector);
    } else if (record.seqMatrix.length !== serverCount || record.tsMatrix.length !== serverCount) {
      reason = `ack matrices are not ${serverCount} x ${serverCount}`;
    } else {
      record.seqMatrix.forEach((row, k) => raise(state.seqMatrix[k], row));
      record.tsMatrix.forEach((row, k) => raise(state.tsMatrix[k], row));
      // The own row of the ts matrix is the timestamp vector when it was recorded.
      raise(state.tsVector, record.tsMatrix[me - 1]);
    }
    if (reason !== undefined) return { badRecord: r, reason };
  }
  return { state };
}
