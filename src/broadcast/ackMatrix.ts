/**
 * What every server is known to have received and how far its clock is
 * known to have moved: the seq matrix, the timestamp matrix, and this
 * server's bounds on every other server's missing messages, from which
 * (with the own clock) the stable point follows.
 *
 * Invariant: bounds[s-1] is a bound: every message from s not yet received
 * here has a timestamp greater than it. It rises when a message from s is
 * accepted (s's later messages carry larger timestamps) and when a status
 * from any server k reports a bound for s that k derived with no more of s's
 * messages than we hold now (seqVector_k[s] <= contiguous[s]). Every entry
 * of both matrices only grows.
 */
import type { ServerId, StatusPacket } from './types.js';

export class AckMatrix {
  /** seqMatrix[k-1][s-1]: highest contiguous seq from s that k reported holding durably. */
  readonly seqMatrix: number[][];
  /** tsMatrix[k-1][s-1]: k's reported bound for s. Row k-1 column k-1 is k's clock. */
  readonly tsMatrix: number[][];
  /** This server's bounds for the other servers; its own entry is unused (the clock stands there). */
  readonly bounds: number[];
  /** The latest status from each server, kept until its bounds can be applied. */
  private readonly latestStatus: (StatusPacket | undefined)[];

  constructor(
    private readonly me: ServerId,
    serverCount: number,
    saved?: { seqMatrix: readonly (readonly number[])[]; tsMatrix: readonly (readonly number[])[]; tsVector: readonly number[] },
  ) {
    const zeros = () => Array.from({ length: serverCount }, () => new Array<number>(serverCount).fill(0));
    this.seqMatrix = saved ? saved.seqMatrix.map((row) => [...row]) : zeros();
    this.tsMatrix = saved ? saved.tsMatrix.map((row) => [...row]) : zeros();
    this.bounds = saved ? [...saved.tsVector] : new Array<number>(serverCount).fill(0);
    this.bounds[me - 1] = 0;
    this.latestStatus = new Array(serverCount).fill(undefined);
  }

  raiseBound(sender: ServerId, ts: number): void {
    if (sender !== this.me && ts > this.bounds[sender - 1]) this.bounds[sender - 1] = ts;
  }

  /** Merge a status. Rows only grow: a reordered older status changes nothing. */
  onStatus(status: StatusPacket, contiguous: readonly number[]): void {
    const k = status.from - 1;
    const seqRow = this.seqMatrix[k];
    const tsRow = this.tsMatrix[k];
    for (let s = 0; s < seqRow.length; s++) {
      if (status.seqVector[s] > seqRow[s]) seqRow[s] = status.seqVector[s];
      if (status.tsVector[s] > tsRow[s]) tsRow[s] = status.tsVector[s];
    }
    const previous = this.latestStatus[k];
    if (!previous || status.tsVector[k] >= previous.tsVector[k]) this.latestStatus[k] = status;
    this.applyBounds(status, contiguous);
  }

  /** Apply the bounds of the latest statuses that have become usable as more messages arrived. */
  refreshBounds(contiguous: readonly number[]): void {
    for (const status of this.latestStatus) if (status) this.applyBounds(status, contiguous);
  }

  private applyBounds(status: StatusPacket, contiguous: readonly number[]): void {
    for (let s = 0; s < contiguous.length; s++) {
      if (s === this.me - 1) continue;
      if (status.seqVector[s] <= contiguous[s] && status.tsVector[s] > this.bounds[s]) this.bounds[s] = status.tsVector[s];
    }
  }

  /** Merge recorded matrices (recovery): entries only grow. */
  mergeMatrices(seqMatrix: readonly (readonly number[])[], tsMatrix: readonly (readonly number[])[]): void {
    for (let k = 0; k < this.seqMatrix.length; k++) {
      for (let s = 0; s < this.seqMatrix.length; s++) {
        this.seqMatrix[k][s] = Math.max(this.seqMatrix[k][s], seqMatrix[k][s]);
        this.tsMatrix[k][s] = Math.max(this.tsMatrix[k][s], tsMatrix[k][s]);
      }
    }
  }

  /** The timestamp vector: the bounds, with the own clock in the own entry. */
  tsVector(clock: number): number[] {
    const vector = [...this.bounds];
    vector[this.me - 1] = clock;
    return vector;
  }

  /** Every message with ts <= stableTs is stable here: nothing ordered before it can still arrive. */
  stableTs(clock: number): number {
    let min = clock;
    for (let s = 0; s < this.bounds.length; s++) if (s !== this.me - 1 && this.bounds[s] < min) min = this.bounds[s];
    return min;
  }

  /** Keep this server's own rows current (its contiguous vector and timestamp vector). */
  syncOwnRows(contiguous: readonly number[], clock: number): void {
    const k = this.me - 1;
    for (let s = 0; s < contiguous.length; s++) {
      this.seqMatrix[k][s] = contiguous[s];
      this.tsMatrix[k][s] = s === k ? clock : this.bounds[s];
    }
  }

  /** Every message with ts <= this is stable at every server (as far as their reports show). */
  stableEverywhereTs(): number {
    let min = Infinity;
    for (const row of this.tsMatrix) for (const ts of row) if (ts < min) min = ts;
    return min;
  }

  /** Highest seq of sender that every server holds durably. */
  heldByAll(sender: ServerId): number {
    let min = Infinity;
    for (const row of this.seqMatrix) min = Math.min(min, row[sender - 1]);
    return min;
  }

  /** Highest seq of sender that some server reports holding. */
  highestKnown(sender: ServerId): number {
    let max = 0;
    for (const row of this.seqMatrix) max = Math.max(max, row[sender - 1]);
    return max;
  }
}
