/**
 * The engine's smaller parts, each on its own against the obvious model:
 * the Lamport clock, views, the retransmission store, flow control, NACK
 * scheduling and the durability records.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { DurabilityRecorder } from '../../src/broadcast/durability.js';
import { FlowControl } from '../../src/broadcast/flowControl.js';
import { LamportClock } from '../../src/broadcast/lamportClock.js';
import { maxRetryFactor, NackScheduler, stallRangeDivisor } from '../../src/broadcast/nackScheduler.js';
import { RetransmitStore } from '../../src/broadcast/retransmitStore.js';
import type { Message } from '../../src/broadcast/types.js';
import { Views } from '../../src/broadcast/views.js';

describe('broadcast/lamportClock', () => {
  it('every timestamp handed out is above every one handed out or witnessed before, and above the client\'s token (1,000 runs)', () => {
    const event = fc.oneof(fc.record({ witnessed: fc.integer({ min: 0, max: 1000 }) }), fc.record({ after: fc.integer({ min: 0, max: 1000 }) }));
    fc.assert(
      fc.property(fc.array(event), (events) => {
        const clock = new LamportClock();
        let highest = 0;
        for (const e of events) {
          const witnessed = 'witnessed' in e ? e.witnessed : undefined;
          if (witnessed === undefined) {
            const after = 'after' in e ? e.after : 0;
            const ts = clock.next(after);
            expect(ts).to.be.greaterThan(Math.max(highest, after));
            highest = ts;
          } else {
            clock.witness(witnessed);
            highest = Math.max(highest, witnessed);
            expect(clock.value).to.be.greaterThan(highest);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('broadcast/views', () => {
  it('the view is this server and those heard from within the timeout; a change is reported once (500 runs)', () => {
    const timeout = 100;
    fc.assert(
      fc.property(fc.array(fc.record({ dt: fc.integer({ min: 0, max: 80 }), from: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }) }), { maxLength: 60 }), (events) => {
        const views = new Views(2, 4, timeout);
        const lastHeard = new Map<number, number>();
        let now = 0;
        let previous = [2];
        for (const { dt, from } of events) {
          now += dt;
          if (from !== undefined && from !== 2) {
            views.heard(from, now);
            lastHeard.set(from, now);
          }
          const expected = [1, 2, 3, 4].filter((id) => id === 2 || now - (lastHeard.get(id) ?? -Infinity) <= timeout);
          const changed = views.update(now);
          expect(views.view).to.deep.equal(expected);
          expect(changed).to.deep.equal(expected.join() === previous.join() ? undefined : expected);
          previous = expected;
          const expiry = Math.min(...expected.filter((id) => id !== 2).map((id) => lastHeard.get(id)! + timeout));
          expect(views.nextExpiryAt()).to.equal(expiry);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('broadcast/retransmitStore', () => {
  it('holds exactly what was added and not collected, per sender in seq order (1,000 runs)', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('add' as const), sender: fc.integer({ min: 1, max: 3 }) }),
      fc.record({ kind: fc.constant('collect' as const), sender: fc.integer({ min: 1, max: 3 }), upTo: fc.integer({ min: 0, max: 30 }) }),
      fc.record({ kind: fc.constant('range' as const), sender: fc.integer({ min: 1, max: 3 }), from: fc.integer({ min: 1, max: 30 }), span: fc.integer({ min: 0, max: 10 }), max: fc.integer({ min: 1, max: 5 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const store = new RetransmitStore(3, [0, 2, 0]);
        const next = [1, 3, 1];
        const model: Message[][] = [[], [], []];
        for (const o of ops) {
          const i = o.sender - 1;
          if (o.kind === 'add') {
            const m: Message = { sender: o.sender, seq: next[i]++, ts: 1, payload: '' };
            store.add(m);
            model[i].push(m);
          } else if (o.kind === 'collect') {
            const before = model[i].length;
            model[i] = model[i].filter((m) => m.seq > o.upTo);
            expect(store.collectUpTo(o.sender, o.upTo)).to.equal(before - model[i].length);
          } else {
            const want = model[i].filter((m) => m.seq >= o.from && m.seq <= o.from + o.span).slice(0, o.max);
            expect(store.range(o.sender, o.from, o.from + o.span, o.max)).to.deep.equal(want);
          }
          expect(store.size).to.equal(model.flat().length);
          expect(store.all()).to.deep.equal(model.flat());
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('broadcast/flowControl', () => {
  it('admits in order, never more than the window leaves room for, and refuses past the queue limit (1,000 runs)', () => {
    const window = 5;
    const maxQueued = 7;
    const op = fc.oneof(fc.constant('offer' as const), fc.integer({ min: 0, max: 8 }));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const flow = new FlowControl<number>(window, maxQueued);
        const model: number[] = [];
        let next = 0;
        for (const o of ops) {
          if (o === 'offer') {
            const accepted = flow.offer(next);
            expect(accepted).to.equal(model.length < maxQueued);
            if (accepted) model.push(next);
            next++;
          } else {
            const room = Math.max(0, window - o);
            expect(flow.admit(o)).to.deep.equal(model.splice(0, room));
          }
          expect(flow.queued).to.equal(model.length);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe('broadcast/nackScheduler', () => {
  it('NACKs evident loss at once and a gap known from seq vectors once it stalls; re-asks the next holder only when two steps see an answer stalled, backing off and asking for less; keeps the holder while it answers; never over the range limit (500 runs)', () => {
    const retryMs = 30;
    const maxNack = 10;
    const step = fc.record({
      dt: fc.integer({ min: 0, max: 100 }),
      filled: fc.integer({ min: 0, max: 12 }),
      gapLength: fc.integer({ min: 0, max: 25 }),
      lossSeen: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const nacks = new NackScheduler(1, 4, retryMs, maxNack);
        const holders = [2, 3, 4];
        let now = 0;
        let contiguous = 0;
        // The gap as this test sees it: when it last opened, progressed or was NACKed, and the outstanding NACK.
        let gapOpen = false;
        let lastEventAt = 0;
        let outstanding: { upTo: number; at: number } | undefined;
        // Whom to ask and how long an answer may stall: kept across gaps.
        let source = 0;
        let currentRetryMs = retryMs;
        let currentRange = maxNack;
        // When a step first saw the outstanding NACK overdue: a later step must see it too.
        let overdueAt: number | undefined;
        for (const { dt, filled, gapLength, lossSeen } of steps) {
          now += dt;
          if (gapLength === 0) {
            nacks.closed(2);
            gapOpen = false;
            outstanding = undefined;
            overdueAt = undefined;
            contiguous += filled;
            continue;
          }
          if (!gapOpen || filled > 0) {
            lastEventAt = now;
            overdueAt = undefined;
          }
          gapOpen = true;
          contiguous += filled;
          const gap = { fromSeq: contiguous + 1, toSeq: contiguous + gapLength };
          const nack = nacks.plan(now, 2, gap, contiguous, lossSeen, () => holders);
          const answered = outstanding !== undefined && contiguous >= outstanding.upTo;
          const overdue = outstanding !== undefined && !answered && now >= lastEventAt + currentRetryMs;
          if (overdue && overdueAt === undefined) overdueAt = now;
          const stalled = overdue && now > overdueAt!;
          const due = answered || stalled || (outstanding === undefined && (lossSeen || now >= lastEventAt + retryMs));
          expect(nack !== undefined, `NACK due at ${now}`).to.equal(due);
          if (!nack) {
            expect(nacks.retryAt(2)).to.equal(overdueAt !== undefined ? overdueAt + 1 : lastEventAt + (outstanding ? currentRetryMs : retryMs));
            continue;
          }
          overdueAt = undefined;
          if (answered) {
            currentRetryMs = Math.min(maxRetryFactor * retryMs, Math.max(retryMs, 2 * (now - outstanding!.at)));
            currentRange = Math.min(maxNack, 2 * currentRange);
          }
          if (stalled) {
            source++;
            currentRetryMs = Math.min(maxRetryFactor * retryMs, 2 * currentRetryMs);
            currentRange = Math.max(1, Math.floor(maxNack / stallRangeDivisor));
          }
          expect(nack.packet).to.include({ type: 'nack', from: 1, sender: 2, fromSeq: gap.fromSeq });
          expect(nack.packet.toSeq).to.equal(Math.min(gap.toSeq, gap.fromSeq + currentRange - 1));
          expect(currentRange).to.be.at.most(maxNack);
          // The same holder while it answers; the next one only after a stall, and then it says so.
          expect(nack.to).to.equal(holders[source % holders.length]);
          expect(nack.resent).to.equal(stalled);
          outstanding = { upTo: nack.packet.toSeq, at: now };
          lastEventAt = now;
          expect(nacks.retryAt(2)).to.equal(now + currentRetryMs);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('backs off while answers stall: each retry waits twice as long, up to the limit', () => {
    const nacks = new NackScheduler(1, 3, 30, 10);
    const gap = { fromSeq: 1, toSeq: 5 };
    const first = nacks.plan(0, 2, gap, 0, true, () => [2, 3]);
    expect(first?.to).to.equal(2);
    const sent: { at: number; to: number }[] = [{ at: 0, to: 2 }];
    for (let now = 1; now <= 3000; now++) {
      const nack = nacks.plan(now, 2, gap, 0, true, () => [2, 3]);
      if (nack) sent.push({ at: now, to: nack.to });
    }
    const waits = sent.slice(1).map(({ at }, i) => at - sent[i].at);
    // Each retry waits for a second step past the deadline (here a millisecond later).
    expect(waits.slice(0, 7)).to.deep.equal([31, 61, 121, 241, 481, 481, 481]);
    expect(sent.slice(0, 4).map(({ to }) => to)).to.deep.equal([2, 3, 2, 3]);
  });

  it('asks no one when no server in the view holds the range', () => {
    const nacks = new NackScheduler(1, 3, 30, 10);
    expect(nacks.plan(0, 2, { fromSeq: 1, toSeq: 5 }, 0, true, () => [])).to.equal(undefined);
  });
});

describe('broadcast/durability', () => {
  it('journals the clock whenever it moved, and the matrices at most once per interval when they changed', () => {
    const zeros = [
      [0, 0],
      [0, 0],
    ];
    const recorder = new DurabilityRecorder(100, 0, zeros, zeros);
    const vector = (clock: number) => () => [clock, 0];
    expect(recorder.records(0, 0, vector(0), zeros, zeros)).to.deep.equal([]);
    expect(recorder.records(1, 3, vector(3), zeros, zeros)).to.deep.equal([{ t: 'ts', tsVector: [3, 0] }]);
    expect(recorder.records(2, 3, vector(3), zeros, zeros)).to.deep.equal([]);
    const moved = [
      [3, 1],
      [0, 0],
    ];
    expect(recorder.records(3, 3, vector(3), moved, zeros)).to.deep.equal([{ t: 'acks', seqMatrix: moved, tsMatrix: zeros }]);
    const movedAgain = [
      [4, 1],
      [0, 0],
    ];
    expect(recorder.records(50, 4, vector(4), movedAgain, zeros)).to.deep.equal([{ t: 'ts', tsVector: [4, 0] }]);
    expect(recorder.records(103, 4, vector(4), movedAgain, zeros)).to.deep.equal([{ t: 'acks', seqMatrix: movedAgain, tsMatrix: zeros }]);
  });
});
