/**
 * The packet codec. A packet, carried inside the authenticated envelope
 * (envelope.ts, which holds the wire version), is binary, big-endian:
 *
 *   packet   = tag:u8 from:u8 body          tag 1 data, 2 status, 3 nack (append-only: never reuse a tag)
 *   data     = hasStatus:u8 [status] count:u16 message*count
 *   message  = sender:u8 seq:num ts:num payloadBytes:u32 payload (UTF-8)
 *   status   = n:u8 seqVector:num*n tsVector:num*n
 *   nack     = sender:u8 fromSeq:num toSeq:num
 *
 * where num is an 8-byte IEEE double holding a non-negative safe integer.
 * A payload travels as its UTF-8 bytes, written once per datagram and read
 * without parsing; only the journal, which stays JSON lines, escapes it.
 *
 * Decoding validates everything and never throws: a packet that does not
 * decode yields a reason, which the transport counts before dropping it.
 */
import { maxPayloadBytes } from '../broadcast/options.js';
import type { DataPacket, Message, NackPacket, Packet, StatusPacket, StatusVectors } from '../broadcast/types.js';
import { maxEnvelopeBytes, maxUdpPayloadBytes } from './envelope.js';

/** Datagram budget on a real network: fits a 1500-byte MTU with IP/UDP headers to spare. */
export const networkDatagramBytes = 1400;
/** Datagram budget when every server is on loopback (MTU 65536): fewer, larger datagrams. */
export const loopbackDatagramBytes = 32 * 1024;

const numBytes = 8;
/** Bytes of a message before its payload: sender, seq, ts, payload length. */
const messageHeadBytes = 1 + 2 * numBytes + 4;
/** Bytes around the messages of a data datagram: envelope (to every server, at most), tag, from, status flag, count. */
const dataEnvelopeBytes = maxEnvelopeBytes + 3 + 2;
/** The most messages one datagram can name. */
const maxMessagesPerDatagram = 0xffff;
/** The largest datagram a message alone can make: a payload's UTF-8 is at most maxPayloadBytes (payloadFits bounds its JSON form, never shorter), plus the rest. */
const maxLoneDatagramBytes = dataEnvelopeBytes + 1 + 2 * 255 * numBytes + messageHeadBytes + maxPayloadBytes;

/**
 * Datagrams larger than this are dropped as oversized: nothing a server sends
 * is larger, as long as every server has the same --max-datagram-bytes.
 */
export function receiveLimitBytes(maxDatagramBytes: number): number {
  return Math.min(maxUdpPayloadBytes, Math.max(maxDatagramBytes, loopbackDatagramBytes, maxLoneDatagramBytes));
}

const enum Tag {
  Data = 1,
  Status = 2,
  Nack = 3,
}

export type PacketDropReason = 'too-short' | 'unknown-type' | 'malformed' | 'unknown-sender' | 'oversized';

export type DecodeResult = { readonly ok: true; readonly packet: Packet } | { readonly ok: false; readonly reason: PacketDropReason; readonly detail: string };

/** Bytes a message adds to a data datagram. */
function messageWireBytes(m: Message): number {
  return messageHeadBytes + Buffer.byteLength(m.payload);
}

function statusBytes(status: StatusVectors | undefined): number {
  return status ? 1 + 2 * numBytes * status.seqVector.length : 0;
}

/**
 * Split a data packet into data packets of at most maxDatagramBytes (a lone
 * larger message gets its own); each carries the status, so whichever
 * arrives first brings it.
 */
export function packData(packet: DataPacket, maxDatagramBytes: number): DataPacket[] {
  const { from, status } = packet;
  const empty = dataEnvelopeBytes + statusBytes(status);
  const packets: DataPacket[] = [];
  let batch: Message[] = [];
  let bytes = empty;
  const push = () => packets.push(status ? { type: 'data', from, messages: batch, status } : { type: 'data', from, messages: batch });
  for (const m of packet.messages) {
    const size = messageWireBytes(m);
    if (batch.length > 0 && (bytes + size > maxDatagramBytes || batch.length === maxMessagesPerDatagram)) {
      push();
      batch = [];
      bytes = empty;
    }
    batch.push(m);
    bytes += size;
  }
  if (batch.length > 0) push();
  return packets;
}

/** The datagram bodies that carry a packet: a data packet is split to fit maxDatagramBytes, any other fits one. */
export function encodeDatagrams(packet: Packet, maxDatagramBytes: number): Buffer[] {
  if (packet.type !== 'data') return [encodePacket(packet)];
  return packData(packet, maxDatagramBytes).map(encodePacket);
}

/** One datagram body; a data packet must name at most 65,535 messages (packData splits larger ones). */
export function encodePacket(packet: Packet): Buffer {
  switch (packet.type) {
    case 'data':
      return encodeData(packet);
    case 'status': {
      const w = new Writer(2 + statusBytes(packet));
      w.u8(Tag.Status).u8(packet.from);
      writeStatus(w, packet);
      return w.buf;
    }
    case 'nack':
      return new Writer(3 + 2 * numBytes).u8(Tag.Nack).u8(packet.from).u8(packet.sender).num(packet.fromSeq).num(packet.toSeq).buf;
  }
}

function encodeData(packet: DataPacket): Buffer {
  if (packet.messages.length > maxMessagesPerDatagram) throw new RangeError(`a data datagram names at most ${maxMessagesPerDatagram} messages`);
  let size = 5 + statusBytes(packet.status);
  for (const m of packet.messages) size += messageWireBytes(m);
  const w = new Writer(size);
  w.u8(Tag.Data).u8(packet.from).u8(packet.status ? 1 : 0);
  if (packet.status) writeStatus(w, packet.status);
  w.u16(packet.messages.length);
  for (const m of packet.messages) w.u8(m.sender).num(m.seq).num(m.ts).utf8WithLength(m.payload);
  return w.buf;
}

function writeStatus(w: Writer, status: StatusVectors): void {
  w.u8(status.seqVector.length);
  for (const x of status.seqVector) w.num(x);
  for (const x of status.tsVector) w.num(x);
}

class Writer {
  readonly buf: Buffer;
  private at = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  u8(x: number): this {
    this.buf[this.at++] = x;
    return this;
  }

  u16(x: number): this {
    this.at = this.buf.writeUInt16BE(x, this.at);
    return this;
  }

  u32(x: number): this {
    this.at = this.buf.writeUInt32BE(x, this.at);
    return this;
  }

  num(x: number): this {
    this.at = this.buf.writeDoubleBE(x, this.at);
    return this;
  }

  /** The UTF-8 bytes of `text` after their count (u32), which is filled in once they are written. */
  utf8WithLength(text: string): this {
    const lengthAt = this.at;
    const bytes = this.buf.write(text, lengthAt + 4, 'utf8');
    this.buf.writeUInt32BE(bytes, lengthAt);
    this.at = lengthAt + 4 + bytes;
    return this;
  }
}

class Malformed extends Error {}

/** Reads a body front to back; running past its end is Malformed. */
class Reader {
  private at = 0;

  constructor(private readonly buf: Buffer) {}

  private take(bytes: number, what: string): number {
    if (this.at + bytes > this.buf.length) throw new Malformed(`the packet ends inside ${what}`);
    const at = this.at;
    this.at += bytes;
    return at;
  }

  u8(what: string): number {
    return this.buf[this.take(1, what)];
  }

  u16(what: string): number {
    return this.buf.readUInt16BE(this.take(2, what));
  }

  u32(what: string): number {
    return this.buf.readUInt32BE(this.take(4, what));
  }

  /** A non-negative safe integer. */
  num(what: string): number {
    const x = this.buf.readDoubleBE(this.take(numBytes, what));
    if (!Number.isSafeInteger(x) || x < 0) throw new Malformed(`${what} is not a non-negative integer`);
    return x;
  }

  positive(what: string): number {
    const x = this.num(what);
    if (x < 1) throw new Malformed(`${what} is not a positive integer`);
    return x;
  }

  utf8(bytes: number, what: string): string {
    const at = this.take(bytes, what);
    const text = this.buf.toString('utf8', at, at + bytes);
    // Decoding replaces a byte sequence that is not UTF-8 with U+FFFD; only then can the bytes differ.
    if (text.includes('\ufffd') && !Buffer.from(text, 'utf8').equals(this.buf.subarray(at, at + bytes))) throw new Malformed(`${what} is not UTF-8`);
    return text;
  }

  end(): void {
    if (this.at !== this.buf.length) throw new Malformed(`${this.buf.length - this.at} bytes after the packet`);
  }
}

/** Decode and validate a packet for a cluster of serverCount servers. Never throws. */
export function decodePacket(bytes: Uint8Array, serverCount: number): DecodeResult {
  if (bytes.length > maxUdpPayloadBytes) return drop('oversized', `${bytes.length} bytes`);
  if (bytes.length < 3) return drop('too-short', `${bytes.length} bytes`);
  const tag = bytes[0];
  if (tag !== Tag.Data && tag !== Tag.Status && tag !== Tag.Nack) return drop('unknown-type', `type tag ${tag}`);
  const from = bytes[1];
  if (from < 1 || from > serverCount) return drop('unknown-sender', `sender ${from} is not a server 1-${serverCount}`);
  const r = new Reader(Buffer.from(bytes.buffer, bytes.byteOffset + 2, bytes.length - 2));
  try {
    const packet = tag === Tag.Data ? decodeData(from, r, serverCount) : tag === Tag.Status ? decodeStatus(from, r, serverCount) : decodeNack(from, r, serverCount);
    r.end();
    return { ok: true, packet };
  } catch (err) {
    if (err instanceof Malformed) return drop('malformed', err.message);
    throw err;
  }
}

function drop(reason: PacketDropReason, detail: string): DecodeResult {
  return { ok: false, reason, detail };
}

function decodeData(from: number, r: Reader, n: number): DataPacket {
  const hasStatus = r.u8('the status flag');
  if (hasStatus > 1) throw new Malformed('the status flag is not 0 or 1');
  const status = hasStatus === 1 ? readStatus(r, n) : undefined;
  const count = r.u16('the message count');
  if (count === 0) throw new Malformed('data without messages');
  const messages: Message[] = new Array<Message>(count);
  for (let i = 0; i < count; i++) {
    const sender = serverId(r.u8('a message sender'), n, 'message sender');
    const seq = r.positive('seq');
    const ts = r.positive('ts');
    const payload = r.utf8(r.u32('a payload length'), 'a payload');
    messages[i] = { sender, seq, ts, payload };
  }
  return status ? { type: 'data', from, messages, status } : { type: 'data', from, messages };
}

function readStatus(r: Reader, n: number): StatusVectors {
  const length = r.u8('the vector length');
  if (length !== n) throw new Malformed(`the vectors have ${length} entries, not ${n}`);
  const seqVector = Array.from({ length }, () => r.num('a seq vector entry'));
  const tsVector = Array.from({ length }, () => r.num('a timestamp vector entry'));
  return { seqVector, tsVector };
}

function decodeStatus(from: number, r: Reader, n: number): StatusPacket {
  return { type: 'status', from, ...readStatus(r, n) };
}

function decodeNack(from: number, r: Reader, n: number): NackPacket {
  const sender = serverId(r.u8('the nack sender'), n, 'nack sender');
  const fromSeq = r.positive('nack start');
  const toSeq = r.positive('nack end');
  if (toSeq < fromSeq) throw new Malformed('nack range is empty');
  return { type: 'nack', from, sender, fromSeq, toSeq };
}

function serverId(value: number, n: number, what: string): number {
  if (value < 1 || value > n) throw new Malformed(`${what} ${value} is not a server 1-${n}`);
  return value;
}
