/** A group's tail (src/chat/history.ts) against a plain list, across many chunks, batches and compactions. */
import { expect } from 'chai';
import fc from 'fast-check';
import { chunkMessages, Edit, History, type ChatMessage } from '../src/chat/history.js';

type Step = { kind: 'append'; count: number } | { kind: 'drop'; count: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('append' as const), count: fc.integer({ min: 1, max: 2 * chunkMessages }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), count: fc.integer({ min: 0, max: 3 * chunkMessages }) }) },
);

describe('chat history tail', () => {
  it('holds what a plain list would through appends and compactions, and a tail a finished batch returned never changes', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 12 }), fc.nat(), (steps, probe) => {
        let history = History.empty;
        let model: ChatMessage[] = [];
        let ts = 0;
        const earlier: { history: History; model: ChatMessage[] }[] = [];
        for (const step of steps) {
          if (step.kind === 'append') {
            const edit = new Edit();
            for (let i = 0; i < step.count; i++) {
              const message = { ts: ++ts, sender: 1 + (ts % 3), user: 'u', text: `m${ts}` };
              history = history.appended(message, edit);
              model = [...model, message];
            }
          } else {
            history = history.withoutFirst(step.count);
            model = model.slice(step.count);
          }
          expect(history.count).to.equal(model.length);
          expect(history.all()).to.deep.equal(model);
          expect(history.first()).to.equal(model[0]);
          const from = model.length === 0 ? 0 : probe % model.length;
          expect(history.slice(from, from + 300)).to.deep.equal(model.slice(from, from + 300));
          for (const [index, m] of model.entries()) if (index % 37 === 0 || index === model.length - 1) expect(history.find(m)).to.deep.equal({ index, message: m });
          expect(history.find({ ts: ts + 1, sender: 1 })).to.equal(undefined);
          earlier.push({ history, model });
        }
        for (const e of earlier) expect(e.history.all()).to.deep.equal(e.model);
        expect(History.of(model).all()).to.deep.equal(model);
        expect(JSON.parse(JSON.stringify(history))).to.deep.equal(model);
      }),
      { numRuns: 80 },
    );
  });

  it('within one batch the tail is changed in place; the tail from before the batch is not', () => {
    let history = History.empty;
    const first = new Edit();
    for (let ts = 1; ts <= 10 * chunkMessages; ts++) history = history.appended({ ts, sender: 1, user: 'u', text: 't' }, first);
    const before = history;
    const edit = new Edit();
    const next = history.appended({ ts: 10 * chunkMessages + 1, sender: 1, user: 'u', text: 't' }, edit);
    expect(next).to.not.equal(before);
    expect(next.appended({ ts: 10 * chunkMessages + 2, sender: 1, user: 'u', text: 't' }, edit)).to.equal(next);
    expect(before.count).to.equal(10 * chunkMessages);
    expect(next.count).to.equal(10 * chunkMessages + 2);
  });
});
