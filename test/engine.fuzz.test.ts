/**
 * The engine under arbitrary packets from authenticated peers (fast-check):
 * whatever the decoder lets through, no exception escapes, memory stays
 * within the engine's limits, and packets it rejects (duplicates, echoes of
 * its own messages, impossible timestamps, messages beyond the receive
 * window) change nothing.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { Engine } from '../src/broadcast/engine.js';
import { engineOptions, type EngineOptions } from '../src/broadcast/options.js';
import type { Message, Packet } from '../src/broadcast/types.js';

const n = 3;
const me = 1;
const options: EngineOptions = engineOptions(me, n, { receiveWindowMessages: 64, maxNackMessages: 50, maxRetransmitMessages: 50 });
const fuzzRuns = 10_000;

const server = fc.integer({ min: 1, max: n });
const peer = fc.integer({ min: 2, max: n });
/** Small numbers hit real sequences; huge ones probe the edges. */
const counter = fc.oneof(fc.integer({ min: 1, max: 80 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }));
const bound = fc.oneof(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const message = fc.record({ sender: server, seq: counter, ts: counter, payload: fc.string({ maxLength: 16 }) });

const packet: fc.Arbitrary<Packet> = fc.oneof(
  fc.record({ type: fc.constant('data' as const), from: peer, messages: fc.array(message, { minLength: 1, maxLength: 12 }) }),
  fc.record({
    type: fc.constant('status' as const),
    from: peer,
    seqVector: fc.array(bound, { minLength: n, maxLength: n }),
    tsVector: fc.array(bound, { minLength: n, maxLength: n }),
  }),
  fc
    .record({ type: fc.constant('nack' as const), from: peer, sender: server, fromSeq: counter, span: fc.integer({ min: 0, max: 5000 }) })
    .map(({ span, ...nack }) => ({ ...nack, toSeq: Math.min(Number.MAX_SAFE_INTEGER, nack.fromSeq + span) })),
);

/** An engine with a little real history: a few own messages and a few from server 2. */
function engineWithHistory(): Engine {
  const engine = new Engine(options, 0);
  for (let i = 0; i < 5; i++) engine.broadcast(`own ${i}`, i, 0);
  engine.ready();
  const peerMessages: Message[] = [1, 2, 3].map((seq) => ({ sender: 2, seq, ts: seq * 2, payload: `peer ${seq}` }));
  engine.receive({ type: 'data', from: 2, messages: peerMessages }, 1);
  engine.ready();
  return engine;
}

function snapshotOf(engine: Engine): string {
  return JSON.stringify({ state: engine.exportState(), tentative: engine.tentative(), buffered: engine.bufferedCount, clock: engine.clock });
}

describe('broadcast engine under arbitrary packets', function () {
  this.timeout(120_000);

  it('never throws and stays within its memory limits, whatever peers send', () => {
    fc.assert(
      fc.property(fc.array(packet, { minLength: 1, maxLength: 20 }), (packets) => {
        const engine = engineWithHistory();
        let now = 10;
        for (const p of packets) {
          engine.receive(p, (now += 7));
          const ready = engine.ready();
          // What one step sends is bounded by the NACK and retransmission limits, whatever was asked.
          const sentMessages = ready.packets.reduce((sum, o) => sum + (o.packet.type === 'data' ? o.packet.messages.length : 0), 0);
          expect(sentMessages).to.be.at.most(options.maxRetransmitMessages * (n - 1) + 5);
          expect(engine.bufferedCount).to.be.at.most((n - 1) * options.receiveWindowMessages);
        }
        engine.tick(now + 10_000);
        engine.ready();
      }),
      { numRuns: fuzzRuns },
    );
  });

  it('rejected data (duplicates, own echoes, impossible timestamps, beyond the receive window) leaves the state unchanged', () => {
    const rejected = fc.oneof(
      // A duplicate of something server 2 already delivered, with any timestamp.
      fc.record({ sender: fc.constant(2), seq: fc.integer({ min: 1, max: 3 }), ts: counter, payload: fc.string({ maxLength: 8 }) }),
      // An echo of one of our own messages, or a forgery of one.
      fc.record({ sender: fc.constant(me), seq: counter, ts: counter, payload: fc.string({ maxLength: 8 }) }),
      // Next in server 2's sequence, but not after its previous timestamp (6): impossible from a correct peer.
      fc.record({ sender: fc.constant(2), seq: fc.constant(4), ts: fc.integer({ min: 1, max: 6 }), payload: fc.string({ maxLength: 8 }) }),
      // Far beyond the receive window of any peer.
      fc.record({ sender: peer, seq: fc.integer({ min: 3 + options.receiveWindowMessages + 1, max: Number.MAX_SAFE_INTEGER }), ts: counter, payload: fc.string({ maxLength: 8 }) }),
    );
    fc.assert(
      fc.property(peer, fc.array(rejected, { minLength: 1, maxLength: 12 }), (from, messages) => {
        const engine = engineWithHistory();
        const before = snapshotOf(engine);
        engine.receive({ type: 'data', from, messages }, 2);
        const ready = engine.ready();
        expect(snapshotOf(engine)).to.equal(before);
        expect(ready.ordered).to.equal(undefined);
        expect(ready.records.filter((r) => r.t === 'msg')).to.deep.equal([]);
      }),
      { numRuns: fuzzRuns },
    );
  });
});
