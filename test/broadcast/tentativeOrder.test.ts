/**
 * TentativeOrder against a model: the sorted list of everything inserted and not
 * yet stable. A reader that replaces its suffix from each reported change
 * holds exactly that list (what the chat replica relies on).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { TentativeOrder } from '../../src/broadcast/tentativeOrder.js';
import { compareOrder, type Message } from '../../src/broadcast/types.js';

describe('broadcast/tentativeOrder', () => {
  it('any insertion order, any stabilisation: the log is the total order, and its reported changes keep a mirror equal to it (1,000 runs)', () => {
    // Distinct (ts, sender) pairs, inserted in a random order, with stabilisation points in between.
    const scenario = fc
      .uniqueArray(fc.record({ ts: fc.integer({ min: 1, max: 60 }), sender: fc.integer({ min: 1, max: 3 }) }), { selector: (k) => `${k.ts}.${k.sender}`, maxLength: 60 })
      .chain((keys) => fc.tuple(fc.shuffledSubarray(keys, { minLength: keys.length, maxLength: keys.length }), fc.array(fc.integer({ min: 0, max: 6 }), { minLength: keys.length, maxLength: keys.length })));
    fc.assert(
      fc.property(scenario, ([keys, actions]) => {
        const log = new TentativeOrder();
        let model: Message[] = [];
        let mirror: Message[] = [];
        let stableTs = 0;
        /** Inserted and not yet reported as added. */
        let unreported: Message[] = [];
        keys.forEach((key, i) => {
          const m: Message = { ...key, seq: i + 1, payload: '' };
          if (m.ts <= stableTs) return; // the engine never accepts a message behind the stable point
          log.insert(m);
          unreported.push(m);
          model.push(m);
          model.sort(compareOrder);
          if (actions[i] === 0) return; // several inserts before the next read
          const change = log.takeChange();
          if (change) mirror = [...mirror.slice(0, change.from), ...change.messages];
          expect(mirror).to.deep.equal(model);
          // Each inserted message is reported added once, in the change after its insertion.
          expect(change?.added ?? []).to.deep.equal(unreported);
          unreported = [];
          if (actions[i] >= 5) {
            stableTs = Math.max(stableTs, m.ts - actions[i]);
            const stable = log.takeStable(stableTs);
            expect(stable).to.deep.equal(model.filter((x) => x.ts <= stableTs));
            model = model.filter((x) => x.ts > stableTs);
            mirror = mirror.slice(stable.length);
          }
          expect(log.toArray()).to.deep.equal(model);
          expect(log.size).to.equal(model.length);
        });
      }),
      { numRuns: 1000 },
    );
  });

  it('reports nothing when nothing was inserted, and an append at the end as a change at the end', () => {
    const log = new TentativeOrder();
    expect(log.takeChange()).to.equal(undefined);
    const a: Message = { sender: 1, seq: 1, ts: 5, payload: 'a' };
    const b: Message = { sender: 2, seq: 1, ts: 7, payload: 'b' };
    log.insert(a);
    expect(log.takeChange()).to.deep.equal({ from: 0, messages: [a], added: [a] });
    log.insert(b);
    expect(log.takeChange()).to.deep.equal({ from: 1, messages: [b], added: [b] });
    expect(log.takeChange()).to.equal(undefined);
  });
});

describe('broadcast/tentativeOrder, a heal', () => {
  it('late messages of one sender merged into a long suffix, batch after batch: the order is total and each change starts where the earliest late message landed', () => {
    const log = new TentativeOrder();
    const own: Message[] = Array.from({ length: 3000 }, (_, i) => ({ sender: 1, seq: i + 1, ts: 2 * i + 2, payload: '' }));
    for (const m of own) log.insert(m);
    log.takeChange();
    const late: Message[] = Array.from({ length: 3000 }, (_, i) => ({ sender: 2, seq: i + 1, ts: 2 * i + 1, payload: '' }));
    for (let batch = 0; batch < 3000; batch += 500) {
      const arriving = late.slice(batch, batch + 500).reverse();
      for (const m of arriving) log.insert(m);
      const change = log.takeChange()!;
      expect(change.from).to.equal(2 * batch);
      expect(change.added).to.deep.equal(arriving);
      expect(change.messages[0]).to.equal(late[batch]);
    }
    const all = log.toArray();
    expect(all.map((m) => m.ts)).to.deep.equal(Array.from({ length: 6000 }, (_, i) => i + 1));
  });

  it('a message with the order key of one it holds is an invariant error, wherever it lands', () => {
    for (const duplicate of [3, 5, 9]) {
      const log = new TentativeOrder();
      for (const ts of [3, 5, 7, 9]) log.insert({ sender: 1, seq: ts, ts, payload: '' });
      log.takeChange();
      log.insert({ sender: 2, seq: 1, ts: 4, payload: '' });
      log.insert({ sender: 1, seq: 99, ts: duplicate, payload: '' });
      expect(() => log.takeChange(), `ts ${duplicate}`).to.throw(/share order key/);
    }
  });
});
