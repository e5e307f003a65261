/**
 * AckMatrix against the obviously correct stable point: a message is stable
 * when every message ordered before it is already here, i.e. its ts is below
 * the ts of every sender's first message not yet received. Whatever valid
 * statuses arrive, in any order, the computed stable point never passes that.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { AckMatrix } from '../../src/broadcast/ackMatrix.js';
import type { StatusPacket } from '../../src/broadcast/types.js';

const n = 3;
const me = 1;

/** Each sender's messages: strictly increasing timestamps. */
const historyArb = fc.array(fc.array(fc.integer({ min: 1, max: 5 }), { maxLength: 8 }), { minLength: n, maxLength: n }).map((gapsPerSender) =>
  gapsPerSender.map((gaps, s) => {
    let ts = s;
    return gaps.map((gap) => (ts += gap * n));
  }),
);

type Event = { kind: 'receive'; sender: number } | { kind: 'status'; from: number; held: number[]; slack: number[] };
const eventArb: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ kind: fc.constant('receive' as const), sender: fc.integer({ min: 1, max: n }) }),
  fc.record({
    kind: fc.constant('status' as const),
    from: fc.integer({ min: 2, max: n }),
    held: fc.array(fc.integer({ min: 0, max: 8 }), { minLength: n, maxLength: n }),
    slack: fc.array(fc.integer({ min: 0, max: 20 }), { minLength: n, maxLength: n }),
  }),
);

describe('broadcast/ackMatrix', () => {
  it('the stable point never passes a message not yet received, whatever valid statuses say (model, 1,000 runs)', () => {
    fc.assert(
      fc.property(historyArb, fc.array(eventArb, { maxLength: 40 }), (history, events) => {
        const acks = new AckMatrix(me, n);
        // This server holds all its own messages, and its clock is past them.
        const contiguous = history.map((messages, s) => (s === me - 1 ? messages.length : 0));
        let clock = history[me - 1].at(-1) ?? 0;
        /** ts of sender s's first message not held by a server holding `held` of them (Infinity: none left). */
        const firstMissing = (s: number, held: number) => history[s][held] ?? Infinity;
        for (const event of events) {
          if (event.kind === 'receive') {
            const s = event.sender - 1;
            if (contiguous[s] >= history[s].length) continue;
            const ts = history[s][contiguous[s]++];
            clock = Math.max(clock, ts) + 1;
            acks.raiseBound(event.sender, ts);
          } else {
            // A valid status: `from` holds a prefix of each sender's messages, and its bound for s is below s's first message it lacks.
            const held = event.held.map((h, s) => Math.min(h, history[s].length));
            const tsVector = held.map((h, s) => Math.max(0, Math.min(firstMissing(s, h) - 1, (history[s][h - 1] ?? 0) + event.slack[s])));
            const status: StatusPacket = { type: 'status', from: event.from, seqVector: held, tsVector };
            acks.onStatus(status, contiguous);
          }
          acks.refreshBounds(contiguous);
          acks.syncOwnRows(contiguous, clock);
          const safe = Math.min(...contiguous.map((held, s) => firstMissing(s, held) - 1));
          expect(acks.stableTs(clock)).to.be.at.most(safe);
          // The matrix views are their obvious definitions.
          for (let s = 1; s <= n; s++) {
            expect(acks.heldByAll(s)).to.equal(Math.min(...acks.seqMatrix.map((row) => row[s - 1])));
            expect(acks.highestKnown(s)).to.equal(Math.max(...acks.seqMatrix.map((row) => row[s - 1])));
          }
          expect(acks.stableEverywhereTs()).to.equal(Math.min(...acks.tsMatrix.flat()));
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('reaches the stable point once every server reports holding everything', () => {
    const acks = new AckMatrix(me, n);
    const contiguous = [2, 3, 1];
    for (const [s, ts] of [[1, 4], [2, 9], [3, 2]]) acks.raiseBound(s, ts);
    expect(acks.stableTs(10)).to.equal(2);
    acks.onStatus({ type: 'status', from: 2, seqVector: [2, 3, 1], tsVector: [9, 12, 9] }, contiguous);
    acks.onStatus({ type: 'status', from: 3, seqVector: [2, 3, 1], tsVector: [9, 9, 11] }, contiguous);
    expect(acks.stableTs(10)).to.equal(10);
    expect(acks.tsVector(10)).to.deep.equal([10, 12, 11]);
  });

  it('ignores a bound derived from more of a sender\'s messages than we hold, until we hold them', () => {
    const acks = new AckMatrix(me, n);
    acks.onStatus({ type: 'status', from: 2, seqVector: [0, 5, 0], tsVector: [0, 50, 0] }, [0, 3, 0]);
    expect(acks.bounds[1]).to.equal(0);
    acks.refreshBounds([0, 5, 0]);
    expect(acks.bounds[1]).to.equal(50);
  });
});
