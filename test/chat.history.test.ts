/** A group's history (src/chat/history.ts) against a plain list, across many chunks and batches. */
import { expect } from 'chai';
import fc from 'fast-check';
import { chunkMessages, Edit, History, type ChatMessage } from '../src/chat/history.js';

type Step = { kind: 'append' } | { kind: 'like'; pick: number; user: string };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: 'append' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('like' as const), pick: fc.nat(), user: fc.constantFrom('a', 'b', 'c') }) },
);

/** Batches of steps; each batch is one Edit, as one applyMessages call is. */
const batchesArb = fc.array(fc.array(stepArb, { minLength: 1, maxLength: 3 * chunkMessages }), { minLength: 1, maxLength: 6 });

describe('chat history', () => {
  it('holds what a plain list would, and a history a finished batch returned never changes', () => {
    fc.assert(
      fc.property(batchesArb, (batches) => {
        let history = History.empty;
        let model: ChatMessage[] = [];
        let ts = 0;
        const earlier: { history: History; model: ChatMessage[]; json: string }[] = [];
        for (const batch of batches) {
          const edit = new Edit();
          for (const step of batch) {
            if (step.kind === 'append' || model.length === 0) {
              const message = { ts: ++ts, sender: 1 + (ts % 3), user: 'u', text: `m${ts}`, likes: [] };
              history = history.appended(message, edit);
              model = [...model, message];
              continue;
            }
            const target = model[step.pick % model.length];
            const liked = (m: ChatMessage) => ({ ...m, likes: [...m.likes, step.user] });
            history = history.changed(target, liked, edit);
            model = model.map((m) => (m === target ? liked(m) : m));
          }
          expect(history.count).to.equal(model.length);
          expect(history.all()).to.deep.equal(model);
          expect(history.last(5).map(({ n, message }) => [n, message])).to.deep.equal(model.slice(-5).map((m, i) => [model.length - Math.min(5, model.length) + i + 1, m]));
          for (const m of model.slice(0, 20)) expect(history.find(m)).to.deep.equal(m);
          expect(history.find({ ts: ts + 1, sender: 1 })).to.equal(undefined);
          earlier.push({ history, model, json: JSON.stringify(history) });
        }
        // Later batches copied what they changed: every earlier history is still what it was.
        for (const e of earlier) {
          expect(e.history.all()).to.deep.equal(e.model);
          expect(JSON.stringify(e.history)).to.equal(e.json);
        }
        // A history survives JSON (snapshots).
        const restored = History.fromJson(JSON.parse(JSON.stringify(history)));
        expect(restored.all()).to.deep.equal(model);
      }),
      { numRuns: 60 },
    );
  });

  it('within one batch the history is changed in place; the history from before the batch is not', () => {
    let history = History.empty;
    const first = new Edit();
    for (let ts = 1; ts <= 10 * chunkMessages; ts++) history = history.appended({ ts, sender: 1, user: 'u', text: 't', likes: [] }, first);
    const before = history;
    const edit = new Edit();
    const next = history.appended({ ts: 10 * chunkMessages + 1, sender: 1, user: 'u', text: 't', likes: [] }, edit);
    expect(next).to.not.equal(before);
    // Within the same batch the same history is changed in place; the one before the batch is not.
    expect(next.appended({ ts: 10 * chunkMessages + 2, sender: 1, user: 'u', text: 't', likes: [] }, edit)).to.equal(next);
    expect(before.count).to.equal(10 * chunkMessages);
    expect(next.count).to.equal(10 * chunkMessages + 2);
  });
});
