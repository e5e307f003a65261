/**
 * Which protocol state goes to the journal, beyond the accepted messages
 * themselves (which the engine journals as it accepts them).
 *
 * Invariants: a `ts` record is written whenever the own clock moved since the
 * last one, in the same Ready as the packets that may carry it, so that the
 * clock never goes back after a crash (docs/spec.md section 2: persist before send). The bounds
 * for other servers ride along but need no durability of their own (what
 * they say stays true; a restart merely relearns them), so a step that only
 * took in statuses writes nothing and costs no fsync. An `acks` record (the
 * matrices) is written at most once per status interval, when they changed,
 * so that a restart and the inspector see what every server holds nearly as
 * it was; losing the latest is safe.
 */
import type { JournalRecord } from './types.js';

export class DurabilityRecorder {
  private recordedClock: number;
  private recordedAcks: string;
  private acksRecordedAt = -Infinity;

  constructor(
    private readonly statusIntervalMs: number,
    clock: number,
    seqMatrix: readonly (readonly number[])[],
    tsMatrix: readonly (readonly number[])[],
  ) {
    this.recordedClock = clock;
    this.recordedAcks = JSON.stringify([seqMatrix, tsMatrix]);
  }

  /** The records one step must add for the state it ends in. */
  records(now: number, clock: number, tsVector: () => number[], seqMatrix: readonly (readonly number[])[], tsMatrix: readonly (readonly number[])[]): JournalRecord[] {
    const records: JournalRecord[] = [];
    if (clock !== this.recordedClock) {
      this.recordedClock = clock;
      records.push({ t: 'ts', tsVector: tsVector() });
    }
    if (now < this.acksRecordedAt + this.statusIntervalMs) return records;
    const acks = JSON.stringify([seqMatrix, tsMatrix]);
    if (acks === this.recordedAcks) return records;
    this.recordedAcks = acks;
    this.acksRecordedAt = now;
    records.push({ t: 'acks', seqMatrix: seqMatrix.map((row) => [...row]), tsMatrix: tsMatrix.map((row) => [...row]) });
    return records;
  }
}
