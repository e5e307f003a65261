/** The wire codec: round trips, packing, and bad datagrams dropped with a reason (never thrown). */
import { expect } from 'chai';
import fc from 'fast-check';
import type { Message, Packet } from '../src/broadcast/types.js';
import { decodePacket, encodePacket, packData } from '../src/wire/codec.js';

const message = (sender: number, seq: number, payload = 'x'): Message => ({ sender, seq, ts: seq + sender, payload });

describe('wire codec', () => {
  it('round-trips every packet type', () => {
    const packets: Packet[] = [
      { type: 'data', from: 2, messages: [message(1, 1, 'héllo "quoted" \\ \n'), message(3, 7)] },
      { type: 'data', from: 3, messages: [message(3, 2)], status: { seqVector: [0, 4, 2, 0, 9], tsVector: [1, 12, 13, 0, 11] } },
      { type: 'status', from: 5, seqVector: [1, 2, 3, 4, 5], tsVector: [9, 8, 7, 6, 5] },
      { type: 'nack', from: 1, sender: 4, fromSeq: 10, toSeq: 20 },
    ];
    for (const packet of packets) expect(decodePacket(encodePacket(packet), 5)).to.deep.equal({ ok: true, packet });
  });

  it('packs several messages per datagram, never over the limit unless one message alone is larger', () => {
    const messages = Array.from({ length: 50 }, (_, i) => message(1, i + 1, 'p'.repeat(100)));
    const packets = packData({ type: 'data', from: 1, messages }, 1400);
    expect(packets.length).to.be.within(4, 6);
    expect(packets.flatMap((p) => p.messages)).to.deep.equal(messages);
    for (const p of packets) expect(encodePacket(p).length).to.be.at.most(1400);
    const big = packData({ type: 'data', from: 1, messages: [message(1, 1, 'b'.repeat(5000)), message(1, 2)] }, 1400);
    expect(big.map((p) => p.messages.length)).to.deep.equal([1, 1]);
  });

  it('every datagram of a data packet carries its status, and still fits the limit', () => {
    const messages = Array.from({ length: 50 }, (_, i) => message(1, i + 1, 'p'.repeat(100)));
    const huge = Number.MAX_SAFE_INTEGER;
    const status = { seqVector: Array(9).fill(huge), tsVector: Array(9).fill(huge) };
    const packets = packData({ type: 'data', from: 1, messages, status }, 1400);
    expect(packets.flatMap((p) => p.messages)).to.deep.equal(messages);
    for (const p of packets) {
      expect(p.status).to.deep.equal(status);
      expect(encodePacket(p).length).to.be.at.most(1400);
      expect(decodePacket(encodePacket(p), 9)).to.deep.equal({ ok: true, packet: p });
    }
  });

  it('carries any Unicode payload byte for byte, and a server with the most vectors', () => {
    const payloads = ['', 'plain', 'héllo "quoted" \\ \n\u0000', '😀 emoji, 中文, \u{10FFFF}', JSON.stringify({ op: 'append', text: 'a "b"' })];
    const packet: Packet = { type: 'data', from: 200, messages: payloads.map((p, i) => ({ sender: 255, seq: Number.MAX_SAFE_INTEGER - i, ts: 1 + i, payload: p })) };
    expect(decodePacket(encodePacket(packet), 255)).to.deep.equal({ ok: true, packet });
  });

  it('drops bad datagrams with a reason', () => {
    const status = encodePacket({ type: 'status', from: 1, seqVector: [0, 0, 0], tsVector: [0, 0, 0] });
    const data = encodePacket({ type: 'data', from: 1, messages: [message(1, 1, 'x')] });
    const num = (x: number) => {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(x);
      return [...b];
    };
    const withByte = (buf: Buffer, at: number, byte: number) => {
      const copy = Buffer.from(buf);
      copy[at] = byte;
      return copy;
    };
    // data = tag, from, status flag, count (2), then sender, seq (8), ts (8), length (4), payload.
    const cases: [Uint8Array, string][] = [
      [Buffer.from([1]), 'too-short'],
      [withByte(status, 0, 77), 'unknown-type'],
      [withByte(status, 1, 7), 'unknown-sender'],
      [withByte(status, 2, 2), 'malformed'], // vectors of the wrong length
      [status.subarray(0, status.length - 1), 'malformed'], // cut short
      [Buffer.concat([status, Buffer.from([0])]), 'malformed'], // trailing bytes
      [Buffer.from([2, 1, 3, ...num(-1), ...num(0), ...num(0), ...num(0), ...num(0), ...num(0)]), 'malformed'],
      [Buffer.from([2, 1, 3, ...num(1.5), ...num(0), ...num(0), ...num(0), ...num(0), ...num(0)]), 'malformed'],
      [withByte(data, 2, 2), 'malformed'], // status flag
      [withByte(data, 4, 0), 'malformed'], // no messages
      [withByte(data, 5, 9), 'malformed'], // message sender outside the cluster
      [Buffer.from([1, 1, 0, 0, 1, 1, ...num(0), ...num(1), 0, 0, 0, 1, 120]), 'malformed'], // seq 0
      [withByte(data, data.length - 1, 0xff), 'malformed'], // payload not UTF-8
      [withByte(data, data.length - 2, 9), 'malformed'], // payload length past the end
      [Buffer.from([3, 1, 2, ...num(5), ...num(4)]), 'malformed'], // empty nack range
      [Buffer.alloc(70000), 'oversized'],
    ];
    for (const [buf, reason] of cases) {
      const result = decodePacket(buf, 3);
      expect(result.ok, reason).to.equal(false);
      if (!result.ok) expect(result.reason, `${reason}: ${result.detail}`).to.equal(reason);
    }
  });

  it('never throws on random or mutated bytes', () => {
    const valid = encodePacket({ type: 'data', from: 1, messages: [message(2, 3, 'abc')] });
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 }), (random, at, byte) => {
        decodePacket(random, 5);
        const mutated = Buffer.from(valid);
        mutated[at] = byte;
        const result = decodePacket(mutated, 5);
        if (result.ok) expect(result.packet.from).to.be.within(1, 5);
      }),
      { numRuns: 10_000 },
    );
  });
});
