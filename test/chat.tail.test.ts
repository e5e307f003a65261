/** A group's tail (src/chat/tail.ts) against a plain list, across many chunks, batches and compactions. */
import { expect } from 'chai';
import fc from 'fast-check';
import { Edit } from '../src/chat/edit.js';
import { chunkMessages, Tail, type ChatMessage } from '../src/chat/tail.js';

type Step = { kind: 'append'; count: number } | { kind: 'drop'; count: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('append' as const), count: fc.integer({ min: 1, max: 2 * chunkMessages }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), count: fc.integer({ min: 0, max: 3 * chunkMessages }) }) },
);

describe('chat history tail', () => {
  it('holds what a plain list would through appends and compactions, and a tail a finished batch returned never changes', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 12 }), fc.nat(), (steps, probe) => {
        let history = Tail.empty;
        let model: ChatMessage[] = [];
        let ts = 0;
        const earlier: { history: Tail; model: ChatMessage[] }[] = [];
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
          // countUpTo: at, between and around the messages' ids.
          const bound = model.length === 0 ? { ts: 1, sender: 1 } : { ts: model[from].ts, sender: probe % 4 };
          expect(history.countUpTo(bound)).to.equal(model.filter((m) => m.ts < bound.ts || (m.ts === bound.ts && m.sender <= bound.sender)).length);
          expect(history.countUpTo({ ts: 0, sender: 0 })).to.equal(0);
          expect(history.countUpTo({ ts: ts + 1, sender: 0 })).to.equal(model.length);
          earlier.push({ history, model });
        }
        for (const e of earlier) expect(e.history.all()).to.deep.equal(e.model);
        expect(Tail.of(model).all()).to.deep.equal(model);
        expect(JSON.parse(JSON.stringify(history))).to.deep.equal(model);
      }),
      { numRuns: 80 },
    );
  });

  it('commonPrefix: how many first messages two tails share, whatever their chunks (skipping shared chunks whole) (300 runs)', () => {
    const message = (ts: number, tag: string): ChatMessage => ({ ts, sender: 1, user: 'u', text: `${tag}${ts}` });
    fc.assert(
      fc.property(fc.nat(3 * chunkMessages), fc.nat(chunkMessages), fc.nat(chunkMessages), fc.nat(3 * chunkMessages), (baseLength, aExtra, bExtra, dropped) => {
        const base = Array.from({ length: baseLength }, (_, i) => message(i + 1, 'base'));
        const grow = (from: Tail, extra: number, offset: number) => {
          const edit = new Edit();
          let h = from;
          // Different timestamps on each side: the forks differ from their first new message on.
          for (let i = 0; i < extra; i++) h = h.appended(message(baseLength + 1 + 2 * i + offset, 'new'), edit);
          return h;
        };
        const common = Tail.of(base);
        const a = grow(common, aExtra, 0);
        const b = grow(common, bExtra, 1);
        expect(a.commonPrefix(b)).to.equal(baseLength);
        expect(a.commonPrefix(a)).to.equal(a.count);
        // Chunks no longer aligned (a compaction cut the first one): the same answer, compared message by message.
        const cut = Math.min(dropped, baseLength);
        expect(a.withoutFirst(cut).commonPrefix(Tail.of(a.all().slice(cut)))).to.equal(a.count - cut);
        expect(a.withoutFirst(cut).commonPrefix(b.withoutFirst(cut))).to.equal(baseLength - cut);
      }),
      { numRuns: 300 },
    );
  });

  it('within one batch the tail is changed in place; the tail from before the batch is not', () => {
    let history = Tail.empty;
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
