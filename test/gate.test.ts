/**
 * The datagram gate: the authenticated envelope, the anti-replay window and
 * the packet codec together, as a daemon applies them to whatever arrives.
 * Fuzzed with fast-check: random and mutated datagrams never throw and are
 * never accepted unless they are exactly what a key holder sealed.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import type { Packet } from '../src/broadcast/types.js';
import { DatagramGate, type Admission, type GateIdentity } from '../src/transport/gate.js';
import { open, seal, envelopeBytes, wireVersion } from '../src/wire/envelope.js';
import { encodePacket } from '../src/wire/codec.js';
import { ReplayGuard, replayWindowSize } from '../src/wire/replayGuard.js';

const key = Buffer.alloc(32, 7);
const otherKey = Buffer.alloc(32, 8);
const fuzzRuns = 10_000;

function gate(me: number, incarnation: number, k = key): DatagramGate {
  const identity: GateIdentity = { me, serverCount: 3, incarnation, key: k, maxReceiveBytes: 32 * 1024, maxDatagramBytes: 32 * 1024 };
  return new DatagramGate(identity);
}

const status = (from: number): Packet => ({ type: 'status', from, seqVector: [1, 2, 3], tsVector: [4, 5, 6] });
const status4 = (from: number): Packet => ({ type: 'status', from, seqVector: [1, 2, 3, 4], tsVector: [5, 6, 7, 8] });

function gate4(me: number, incarnation: number): DatagramGate {
  return new DatagramGate({ me, serverCount: 4, incarnation, key, maxReceiveBytes: 32 * 1024, maxDatagramBytes: 32 * 1024 });
}

function reason(admission: Admission | undefined): string {
  if (admission === undefined) return 'blocked';
  return admission.ok ? 'accepted' : admission.reason;
}

/** Servers 1 and 2 that already heard each other's runs (as after one heartbeat each way). */
function pair(): { one: DatagramGate; two: DatagramGate } {
  const one = gate(1, 1000);
  const two = gate(2, 2000);
  two.admit(one.seal([2], status(1))[0]);
  one.admit(two.seal([1], status(2))[0]);
  return { one, two };
}

describe('datagram gate', () => {
  it('accepts what a key holder sealed for this run, once', () => {
    const { one, two } = pair();
    const datagram = one.seal([2], status(1))[0];
    expect(two.admit(datagram)).to.deep.equal({ ok: true, packet: status(1) });
    expect(reason(two.admit(datagram))).to.equal('replayed');
  });

  it('two servers that start at once learn each other within one datagram each way', () => {
    const one = gate(1, 1000);
    const two = gate(2, 2000);
    expect(reason(two.admit(one.seal([2], status(1))[0]))).to.equal('stale');
    expect(reason(one.admit(two.seal([1], status(2))[0]))).to.equal('accepted');
    expect(reason(two.admit(one.seal([2], status(1))[0]))).to.equal('accepted');
  });

  it('drops forged, truncated, oversized, misaddressed and foreign-version datagrams with a reason', () => {
    const { one, two } = pair();
    const good = one.seal([2], status(1))[0];
    const forged = gate(1, 1000, otherKey);
    two.admit(one.seal([2], status(1))[0]);
    const versioned = Buffer.from(good);
    versioned[0] = wireVersion + 1;
    const cases: [Buffer, string][] = [
      [forged.seal([2], status(1))[0], 'auth-failed'],
      [good.subarray(0, envelopeBytes - 5), 'too-short'],
      [Buffer.concat([good, Buffer.alloc(40_000)]), 'oversized'],
      [one.seal([3], status(1))[0], 'misdirected'],
      [versioned, 'wrong-version'],
      [seal(key, { from: 9, to: 2, fromIncarnation: 1, toIncarnation: 2000, counter: 1 }, encodePacket(status(1))), 'unknown-sender'],
      [seal(key, { from: 1, to: 2, fromIncarnation: 1000, toIncarnation: 2000, counter: 99 }, Buffer.from([2, 1, 3, 0])), 'malformed'],
      [seal(key, { from: 1, to: 2, fromIncarnation: 1000, toIncarnation: 2000, counter: 100 }, encodePacket(status(3))), 'malformed'],
    ];
    for (const [datagram, expected] of cases) expect(reason(two.admit(datagram)), expected).to.equal(expected);
  });

  it('seals a packet for several servers once: each of them accepts it once, a server it was not sent to never', () => {
    const gates = [1, 2, 3, 4].map((id) => gate4(id, 1000 + id));
    // Every server has heard every other's run.
    for (const from of gates) for (const to of gates) if (from !== to) to.admit(from.seal([gates.indexOf(to) + 1], status4(gates.indexOf(from) + 1))[0]);
    const [one, two, three, four] = gates;
    const datagrams = one.seal([2, 3], status4(1));
    expect(datagrams).to.have.length(1);
    const [datagram] = datagrams;
    expect(datagram[2], 'addressed to every server').to.equal(0);
    expect(two.admit(datagram)).to.deep.equal({ ok: true, packet: status4(1) });
    expect(three.admit(datagram)).to.deep.equal({ ok: true, packet: status4(1) });
    expect(reason(two.admit(datagram)), 'again').to.equal('replayed');
    expect(reason(four.admit(datagram)), 'to a server it was not sent to').to.equal('stale');
    // Counters stay per receiver: what server 1 sends server 2 alone next is accepted, and so is its next datagram to all.
    expect(reason(two.admit(one.seal([2], status4(1))[0]))).to.equal('accepted');
    const toAll = one.seal([2, 3, 4], status4(1))[0];
    for (const receiver of [two, three, four]) expect(reason(receiver.admit(toAll))).to.equal('accepted');
    // A cluster of another size (the same key, misconfigured) reads the packet elsewhere: never accepted.
    expect(reason(gate(2, 1002).admit(toAll))).to.not.equal('accepted');
  });

  it('accepts no mutation of a datagram sealed for several servers', () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 255 }), (at, flip) => {
        const one = gate4(1, 1001);
        const three = gate4(3, 1003);
        one.admit(three.seal([1], status4(3))[0]);
        three.admit(one.seal([3], status4(1))[0]);
        const sealed = one.seal([2, 3, 4], status4(1))[0];
        const mutated = Buffer.from(sealed);
        mutated[at % mutated.length] ^= flip;
        expect(reason(three.admit(mutated))).to.not.equal('accepted');
        expect(reason(three.admit(sealed))).to.equal('accepted');
      }),
      { numRuns: fuzzRuns },
    );
  });

  it('refuses datagrams from an earlier run of the sender and to an earlier run of the receiver', () => {
    const { one, two } = pair();
    const fromOldRun = one.seal([2], status(1))[0];
    const toOldRun = two.seal([1], status(2))[0];
    // Server 1 restarts (a later run); server 2 hears the new run.
    const oneAgain = gate(1, 1001);
    oneAgain.admit(two.seal([1], status(2))[0]);
    expect(reason(two.admit(oneAgain.seal([2], status(1))[0]))).to.equal('accepted');
    expect(reason(two.admit(fromOldRun))).to.equal('replayed');
    expect(reason(oneAgain.admit(toOldRun))).to.equal('stale');
  });

  it('never throws on random or mutated datagrams, and accepts no mutation of a sealed one', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (random, at, flip) => {
        const { one, two } = pair();
        expect(reason(two.admit(Buffer.from(random)))).to.not.equal('accepted');
        const sealed = one.seal([2], status(1))[0];
        const mutated = Buffer.from(sealed);
        mutated[at % mutated.length] ^= flip;
        expect(reason(two.admit(mutated))).to.not.equal('accepted');
        expect(reason(two.admit(sealed))).to.equal('accepted');
      }),
      { numRuns: fuzzRuns },
    );
  });

  it('random bytes under a valid header never get past the MAC', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), (body) => {
        const { two } = pair();
        const datagram = Buffer.concat([Buffer.from([wireVersion, 1, 2]), Buffer.alloc(envelopeBytes - 3), body]);
        expect(open(key, datagram, 2, 3).ok).to.equal(false);
        expect(reason(two.admit(datagram))).to.equal('auth-failed');
      }),
      { numRuns: fuzzRuns },
    );
  });
});

describe('replay window', () => {
  it('accepts each counter at most once, in any order within the window, like a set of everything seen', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 3 * replayWindowSize }), { maxLength: 200 }), (counters) => {
        const guard = new ReplayGuard(5, 3);
        const seen = new Set<number>();
        let highest = 0;
        for (const counter of counters) {
          const verdict = guard.check({ from: 2, to: 1, fromIncarnation: 9, toIncarnation: 5, counter });
          const tooOld = highest - counter >= replayWindowSize;
          const expected = seen.has(counter) || tooOld ? 'replayed' : 'accept';
          expect(verdict, `counter ${counter} after ${counters.join(',')}`).to.equal(expected);
          if (expected === 'accept') seen.add(counter);
          highest = Math.max(highest, counter);
        }
      }),
      { numRuns: fuzzRuns },
    );
  });
});
