/**
 * ReceiveWindow against a model: a set of the seqs received per sender.
 * Accepted in sequence order only, each once, never past the window; the
 * gap is the first missing range.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { ReceiveWindow } from '../../src/broadcast/receiveWindow.js';
import type { Message } from '../../src/broadcast/types.js';

const windowSize = 8;
/** Sender s's message seq has ts 10 * seq + s: increasing with seq, as a Lamport clock makes it. */
const message = (sender: number, seq: number): Message => ({ sender, seq, ts: 10 * seq + sender, payload: `${sender}:${seq}` });

class Model {
  contiguous = [0, 0];
  readonly held = [new Set<number>(), new Set<number>()];

  offer(m: Message): number[] | 'duplicate' | 'buffered' | 'beyond-window' {
    const i = m.sender - 1;
    const next = this.contiguous[i] + 1;
    if (m.seq < next || (m.seq > next && this.held[i].has(m.seq))) return 'duplicate';
    if (m.seq - next >= windowSize) return 'beyond-window';
    this.held[i].add(m.seq);
    if (m.seq > next) return 'buffered';
    const accepted: number[] = [];
    while (this.held[i].has(this.contiguous[i] + 1)) {
      this.contiguous[i]++;
      this.held[i].delete(this.contiguous[i]);
      accepted.push(this.contiguous[i]);
    }
    return accepted;
  }

  gap(sender: number, knownHighest: number): { fromSeq: number; toSeq: number } | undefined {
    const i = sender - 1;
    const fromSeq = this.contiguous[i] + 1;
    const ahead = [...this.held[i]];
    const firstHeld = ahead.length > 0 ? Math.min(...ahead) : Infinity;
    const toSeq = Math.min(Math.max(knownHighest, ...ahead), firstHeld - 1);
    return toSeq >= fromSeq ? { fromSeq, toSeq } : undefined;
  }
}

describe('broadcast/receiveWindow', () => {
  it('accepts each sender\'s messages once, in sequence order, within the window, and reports the first gap (model, 1,000 runs)', () => {
    const offers = fc.array(fc.record({ sender: fc.integer({ min: 1, max: 2 }), seq: fc.integer({ min: 1, max: 25 }), known: fc.integer({ min: 0, max: 30 }) }), { maxLength: 120 });
    fc.assert(
      fc.property(offers, (list) => {
        const window = new ReceiveWindow([0, 0], windowSize);
        const model = new Model();
        for (const { sender, seq, known } of list) {
          const got = window.offer(message(sender, seq), 0);
          const want = model.offer(message(sender, seq));
          expect(Array.isArray(got) ? got.map((m) => m.seq) : got).to.deep.equal(want);
          expect(window.contiguous).to.deep.equal(model.contiguous);
          expect(window.gap(sender, known)).to.deep.equal(model.gap(sender, known));
          expect(window.bufferedCount()).to.equal(model.held[0].size + model.held[1].size);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses a message whose timestamp is not after the sender\'s previous, or at or behind the stable point, changing nothing', () => {
    const window = new ReceiveWindow([0, 0], windowSize);
    expect(window.offer(message(1, 1), 0)).to.have.length(1);
    expect(window.offer({ ...message(1, 2), ts: message(1, 1).ts }, 0)).to.equal('inconsistent');
    expect(window.offer(message(1, 2), message(1, 2).ts)).to.equal('inconsistent');
    expect(window.contiguous).to.deep.equal([1, 0]);
    expect(window.offer(message(1, 2), 0)).to.have.length(1);
  });
});
