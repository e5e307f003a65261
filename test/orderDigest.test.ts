/** The state digest (src/node/application.ts OrderDigest): one hash chain over the order, however it is fed. */
import { expect } from 'chai';
import fc from 'fast-check';
import type { Message } from '../src/broadcast/types.js';
import type { OrderChange } from '../src/broadcast/tentativeOrder.js';
import { chainBlockMessages, OrderDigest } from '../src/node/application.js';

/** Stable messages only: the digest ignores the tentative order's changes. */
const noChange: OrderChange | undefined = undefined;

const messages = (count: number): Message[] => Array.from({ length: count }, (_, i) => ({ sender: 1 + (i % 3), seq: 1 + Math.floor(i / 3), ts: i + 1, payload: `{"op":"append","text":"m${i}"}` }));

describe('order digest', () => {
  it('is the same whatever steps the stable messages come in, across snapshots, and with the stable point anywhere in the order', () => {
    const order = messages(3 * chainBlockMessages + 7);
    const reference = new OrderDigest(undefined);
    reference.apply(noChange, order);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 90 }), { minLength: 1 }), fc.array(fc.boolean()), fc.nat(order.length), (steps, snapshots, stableAt) => {
        let digest = new OrderDigest(undefined);
        let at = 0;
        for (const [i, size] of steps.entries()) {
          if (at >= stableAt) break;
          const batch = order.slice(at, Math.min(stableAt, at + size));
          digest.apply(noChange, batch);
          at += batch.length;
          // A restart from a snapshot taken here goes on with the same chain.
          if (snapshots[i]) digest = new OrderDigest(JSON.parse(JSON.stringify(digest.snapshot())));
        }
        // The rest of the order is tentative: the digest of the whole order is the same.
        expect(digest.digestWith(order.slice(at))).to.equal(reference.digest());
        expect(digest.digest()).to.match(new RegExp(`^${at}:[0-9a-f]{16}$`));
      }),
    );
  });

  it('differs when a message, its place or its payload differs', () => {
    const order = messages(2 * chainBlockMessages);
    const digestOf = (list: Message[]) => {
      const d = new OrderDigest(undefined);
      d.apply(noChange, list);
      return d.digest();
    };
    const swapped = [...order];
    [swapped[10], swapped[11]] = [swapped[11], swapped[10]];
    const changed = order.map((m, i) => (i === 100 ? { ...m, payload: `${m.payload} ` } : m));
    const digests = [digestOf(order), digestOf(swapped), digestOf(changed), digestOf(order.slice(0, -1))];
    expect(new Set(digests).size).to.equal(4);
    expect(new OrderDigest(undefined).digest()).to.match(/^0:[0-9a-f]{16}$/);
  });
});
