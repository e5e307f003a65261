/**
 * The composed engine, checked against obvious definitions while three
 * engines exchange packets over a random lossy, reordering link (no node, no
 * files: the engine alone):
 *
 * - garbage collection: a message leaves the store only once it is stable
 *   here and every server's reported seq vector holds it;
 * - the stable prefixes of all engines are prefixes of one order;
 * - recovery: the snapshot plus the journal written after it give back the
 *   engine's sequence counters and clock exactly, and every message it still holds.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { Engine } from '../../src/broadcast/engine.js';
import { engineOptions } from '../../src/broadcast/options.js';
import type { EngineState } from '../../src/broadcast/recovery.js';
import type { JournalRecord, Message, Outbound } from '../../src/broadcast/types.js';

const n = 3;
const options = (me: number) => engineOptions(me, n, { statusIntervalMs: 10, ackDelayMs: 1, viewTimeoutMs: 50, nackRetryMs: 5 });

type Step = { kind: 'broadcast'; at: number } | { kind: 'deliver'; pick: number; drop: boolean } | { kind: 'tick'; dt: number } | { kind: 'snapshot'; at: number };
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('broadcast' as const), at: fc.integer({ min: 1, max: n }) }),
  fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat(), drop: fc.boolean() }),
  fc.record({ kind: fc.constant('deliver' as const), pick: fc.nat(), drop: fc.constant(false) }),
  fc.record({ kind: fc.constant('tick' as const), dt: fc.integer({ min: 1, max: 20 }) }),
  fc.record({ kind: fc.constant('snapshot' as const), at: fc.integer({ min: 1, max: n }) }),
);

describe('broadcast/engine (composed)', () => {
  it('collects only what is stable and held by all, agrees on one stable order, and recovers exactly from snapshot and journal (150 runs)', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 20, maxLength: 300 }), (steps) => {
        let now = 0;
        const engines = [1, 2, 3].map((me) => new Engine(options(me), now));
        const inFlight: (Outbound & { from: number })[] = [];
        const stable: Message[][] = [[], [], []];
        const everything = new Map<string, Message>();
        const snapshots: (EngineState | undefined)[] = [undefined, undefined, undefined];
        const journals: JournalRecord[][] = [[], [], []];
        let payload = 0;

        const take = (i: number) => {
          const ready = engines[i].ready();
          journals[i].push(...ready.records);
          for (const out of ready.packets) inFlight.push({ ...out, from: i + 1 });
          for (const m of ready.stable) stable[i].push(m);
          for (const { message } of ready.sequenced) everything.set(`${message.sender}:${message.seq}`, message);
          checkCollection(engines[i], everything);
        };

        for (const step of steps) {
          if (step.kind === 'broadcast') engines[step.at - 1].broadcast(`p${payload++}`, payload, now);
          else if (step.kind === 'tick') {
            now += step.dt;
            engines.forEach((e) => e.tick(now));
          } else if (step.kind === 'deliver' && inFlight.length > 0) {
            const [out] = inFlight.splice(step.pick % inFlight.length, 1);
            if (!step.drop) engines[out.to - 1].receive(out.packet, now);
          } else if (step.kind === 'snapshot') {
            // The node snapshots right after a step, with everything durable.
            take(step.at - 1);
            snapshots[step.at - 1] = engines[step.at - 1].exportState();
            journals[step.at - 1] = [];
          }
          engines.forEach((_, i) => take(i));
        }

        const longest = stable.reduce((a, b) => (a.length >= b.length ? a : b));
        for (const order of stable) expect(order).to.deep.equal(longest.slice(0, order.length));

        engines.forEach((engine, i) => {
          const recovered = Engine.recover(options(i + 1), now, snapshots[i], journals[i]);
          if (!('engine' in recovered)) throw new Error(`recovery of ${i + 1} failed: ${recovered.reason}`);
          const live = engine.exportState();
          const back = recovered.engine.exportState();
          expect(back.lastSeq).to.equal(live.lastSeq);
          expect(back.contiguous).to.deep.equal(live.contiguous);
          expect(recovered.engine.clock).to.equal(engine.clock);
          expect(back.stableTs).to.be.at.most(live.stableTs);
          const held = new Set(back.messages.map((m) => `${m.sender}:${m.seq}`));
          for (const m of live.messages) expect(held.has(`${m.sender}:${m.seq}`), `${m.sender}:${m.seq} recovered`).to.equal(true);
        });
      }),
      { numRuns: 150 },
    );
  });
});

/** Every message of a sender up to what the store has collected is stable here and reported held by every server. */
function checkCollection(engine: Engine, everything: ReadonlyMap<string, Message>): void {
  const state = engine.exportState();
  state.collectedUpTo.forEach((upTo, i) => {
    const heldByAll = Math.min(...engine.seqMatrix.map((row) => row[i]));
    expect(upTo, `collected of ${i + 1}`).to.be.at.most(heldByAll);
    for (let seq = 1; seq <= upTo; seq++) {
      const m = everything.get(`${i + 1}:${seq}`);
      if (m) expect(m.ts, `collected ${i + 1}:${seq}`).to.be.at.most(engine.stableTs);
    }
  });
}

describe('broadcast/engine (what it refuses to broadcast)', () => {
  it('refuses a payload too large for one message, or one UTF-8 cannot carry, and sequences nothing for it', () => {
    const engine = new Engine(options(1), 0);
    expect(engine.broadcast('x'.repeat(20_000), 1, 0)).to.equal('too-large');
    expect(engine.broadcast('a lone \ud800 surrogate', 2, 0)).to.equal('not-unicode');
    expect(engine.broadcast('a pair \ud83d\ude00 is fine', 3, 0)).to.equal('accepted');
    expect(engine.ready().sequenced.map((s) => s.tag)).to.deep.equal([3]);
  });
});

describe('broadcast/engine (asking for missing messages)', () => {
  const retryMs = 30;
  /** Server `me`, having heard from the other two (so they are in its view). */
  const make = (me: number) => {
    const engine = new Engine(engineOptions(me, 3, { statusIntervalMs: 1000, ackDelayMs: 1, viewTimeoutMs: 5000, nackRetryMs: retryMs }), 0);
    for (const from of [1, 2, 3]) if (from !== me) engine.receive({ type: 'status', from, seqVector: [0, 0, 0], tsVector: [0, 0, 0] }, 0);
    engine.ready();
    return engine;
  };
  const to = (out: Outbound[], id: number) => out.filter((o) => o.to === id).map((o) => o.packet);
  const nacks = (out: Outbound[]) => out.filter((o) => o.packet.type === 'nack');

  const gapSeenAt = 2;

  /** Server 1 broadcasts ten messages; server 2 receives them and reports holding them to server 3. */
  function setUp() {
    const [one, two, three] = [1, 2, 3].map(make);
    for (let i = 0; i < 10; i++) one.broadcast(`m${i}`, i, 0);
    const fromOne = one.ready().packets;
    for (const p of to(fromOne, 2)) two.receive(p, 0);
    two.ready();
    two.tick(1); // its acknowledgement goes out within the ack delay
    const fromTwo = two.ready().packets;
    expect(to(fromTwo, 3)).to.have.length(1);
    for (const p of to(fromTwo, 3)) three.receive(p, gapSeenAt);
    // Server 3 steps at once, as a daemon does after a packet, and sees the gap.
    const firstStep = three.ready().packets;
    return { one, two, three, dataToThree: to(fromOne, 3), firstStep };
  }

  it('waits for messages a peer reports that are merely late, and never asks for them once they arrive', () => {
    const { three, dataToThree, firstStep } = setUp();
    expect(three.seqVector[0]).to.equal(0);
    expect(three.seqMatrix[1][0], 'server 2 reported holding ten of server 1').to.equal(10);
    expect(nacks(firstStep)).to.deep.equal([]);
    three.tick(10);
    expect(nacks(three.ready().packets)).to.deep.equal([]);
    for (const p of dataToThree) three.receive(p, 12);
    three.ready();
    expect(three.seqVector[0]).to.equal(10);
    for (let t = 20; t <= 200; t += 10) {
      three.tick(t);
      three.ready();
    }
    expect(three.counters.nacksSent).to.equal(0);
  });

  it('asks for messages a peer reports once they have not come for the retry time, and gets them', () => {
    const { one, two, three } = setUp();
    three.tick(gapSeenAt + retryMs - 1);
    expect(nacks(three.ready().packets)).to.deep.equal([]);
    three.tick(gapSeenAt + retryMs);
    const [nack] = nacks(three.ready().packets);
    expect(nack.packet).to.include({ type: 'nack', sender: 1, fromSeq: 1, toSeq: 10 });
    const holder = nack.to === 1 ? one : two;
    holder.receive(nack.packet, gapSeenAt + retryMs + 1);
    for (const p of to(holder.ready().packets, 3)) three.receive(p, gapSeenAt + retryMs + 2);
    three.ready();
    expect(three.seqVector[0]).to.equal(10);
  });

  it('asks at once when a later message of the sender arrived first (the earlier ones were lost)', () => {
    const [one, three] = [1, 3].map(make);
    one.broadcast('lost', 1, 0);
    one.ready(); // the datagram to server 3 is lost
    one.broadcast('arrives', 2, 1);
    for (const p of to(one.ready().packets, 3)) three.receive(p, 1);
    const [nack] = nacks(three.ready().packets);
    expect(nack.packet).to.include({ type: 'nack', sender: 1, fromSeq: 1, toSeq: 1 });
  });
});
