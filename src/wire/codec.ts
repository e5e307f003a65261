/**
 * The packet codec. A packet, carried inside the authenticated envelope
 * (envelope.ts, which holds the wire version), is
 *
 *   byte 0      type tag: 1 data, 2 status, 3 nack (append-only: never reuse a tag)
 *   bytes 1..   UTF-8 JSON body, compact field names (a data body may end
 *               with the sender's status, "s" and "t", as a status body has)
 *
 * Decoding validates everything and never throws: a packet that does not
 * decode yields a reason, which the transport counts before dropping it.
 */
import { maxPayloadBytes } from '../broadcast/options.js';
import type { DataPacket, Message, NackPacket, Packet, StatusPacket, StatusVectors } from '../broadcast/types.js';
import { envelopeBytes, maxUdpPayloadBytes } from './envelope.js';

const headerBytes = 1;
/** Datagram budget on a real network: fits a 1500-byte MTU with IP/UDP headers to spare. */
export const networkDatagramBytes = 1400;
/** Datagram budget when every server is on loopback (MTU 65536): fewer, larger datagrams. */
export const loopbackDatagramBytes = 32 * 1024;
/** Bytes around the message pieces of a data datagram: envelope, tag, `{"f":9,"m":[` and `]}`. */
const dataEnvelopeBytes = envelopeBytes + headerBytes + 16;
/** The largest datagram a message alone can make: its payload plus the envelope, tag and numbers. */
const maxLoneDatagramBytes = dataEnvelopeBytes + 64 + maxPayloadBytes;

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

/** The JSON text of one message inside a data datagram: `[sender,seq,ts,"payload"]`. */
export function messagePiece(m: Message): string {
  return `[${m.sender},${m.seq},${m.ts},${JSON.stringify(m.payload)}]`;
}

const pieceBytes = new WeakMap<Message, number>();

/** Bytes a message adds to a data datagram (memoised: a message is packed once per destination set). */
export function messageWireBytes(m: Message): number {
  let bytes = pieceBytes.get(m);
  if (bytes === undefined) {
    bytes = Buffer.byteLength(messagePiece(m)) + 1;
    pieceBytes.set(m, bytes);
  }
  return bytes;
}

/** The JSON fields a data datagram adds for the sender's status: `,"s":[...],"t":[...]`. */
function statusFields(status: StatusVectors | undefined): string {
  return status ? `,"s":[${status.seqVector.join(',')}],"t":[${status.tsVector.join(',')}]` : '';
}

/**
 * Split a data packet into data packets of at most maxDatagramBytes (a lone
 * larger message gets its own); each carries the status, so whichever
 * arrives first brings it.
 */
export function packData(packet: DataPacket, maxDatagramBytes: number): DataPacket[] {
  const { from, status } = packet;
  const empty = dataEnvelopeBytes + statusFields(status).length;
  const packets: DataPacket[] = [];
  let batch: Message[] = [];
  let bytes = empty;
  const push = () => packets.push(status ? { type: 'data', from, messages: batch, status } : { type: 'data', from, messages: batch });
  for (const m of packet.messages) {
    const size = messageWireBytes(m);
    if (batch.length > 0 && bytes + size > maxDatagramBytes) {
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

export function encodePacket(packet: Packet): Buffer {
  switch (packet.type) {
    case 'data':
      return frame(Tag.Data, `{"f":${packet.from},"m":[${packet.messages.map(messagePiece).join(',')}]${statusFields(packet.status)}}`);
    case 'status':
      return frame(Tag.Status, JSON.stringify({ f: packet.from, s: packet.seqVector, t: packet.tsVector }));
    case 'nack':
      return frame(Tag.Nack, JSON.stringify({ f: packet.from, s: packet.sender, a: packet.fromSeq, b: packet.toSeq }));
  }
}

function frame(tag: Tag, body: string): Buffer {
  const buf = Buffer.allocUnsafe(headerBytes + Buffer.byteLength(body));
  buf[0] = tag;
  buf.write(body, headerBytes, 'utf8');
  return buf;
}

class Malformed extends Error {}

/** Decode and validate a packet for a cluster of serverCount servers. Never throws. */
export function decodePacket(buf: Uint8Array, serverCount: number): DecodeResult {
  if (buf.length > maxUdpPayloadBytes) return drop('oversized', `${buf.length} bytes`);
  if (buf.length < headerBytes + 2) return drop('too-short', `${buf.length} bytes`);
  const tag = buf[0];
  if (tag !== Tag.Data && tag !== Tag.Status && tag !== Tag.Nack) return drop('unknown-type', `type tag ${tag}`);
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + headerBytes, buf.length - headerBytes).toString('utf8'));
  } catch {
    return drop('malformed', 'body is not JSON');
  }
  try {
    if (!isObject(body)) throw new Malformed('body is not an object');
    const from = serverId(body.f, serverCount);
    if (from === undefined) return drop('unknown-sender', `sender ${JSON.stringify(body.f)} is not a server 1-${serverCount}`);
    switch (tag) {
      case Tag.Data:
        return { ok: true, packet: decodeData(from, body, serverCount) };
      case Tag.Status:
        return { ok: true, packet: decodeStatus(from, body, serverCount) };
      case Tag.Nack:
        return { ok: true, packet: decodeNack(from, body, serverCount) };
    }
  } catch (err) {
    if (err instanceof Malformed) return drop('malformed', err.message);
    throw err;
  }
}

function drop(reason: PacketDropReason, detail: string): DecodeResult {
  return { ok: false, reason, detail };
}

function decodeData(from: number, body: Record<string, unknown>, n: number): DataPacket {
  if (!Array.isArray(body.m) || body.m.length === 0) throw new Malformed('data without messages');
  const messages = body.m.map((item: unknown): Message => {
    if (!Array.isArray(item) || item.length !== 4) throw new Malformed('message is not [sender, seq, ts, payload]');
    const [sender, seq, ts, payload] = item as unknown[];
    const id = serverId(sender, n);
    if (id === undefined) throw new Malformed(`message sender ${JSON.stringify(sender)} is not a server`);
    if (typeof payload !== 'string') throw new Malformed('payload is not a string');
    return { sender: id, seq: positive(seq, 'seq'), ts: positive(ts, 'ts'), payload };
  });
  if (body.s === undefined && body.t === undefined) return { type: 'data', from, messages };
  return { type: 'data', from, messages, status: { seqVector: vector(body.s, n, 'seq vector'), tsVector: vector(body.t, n, 'timestamp vector') } };
}

function decodeStatus(from: number, body: Record<string, unknown>, n: number): StatusPacket {
  const seqVector = vector(body.s, n, 'seq vector');
  const tsVector = vector(body.t, n, 'timestamp vector');
  return { type: 'status', from, seqVector, tsVector };
}

function decodeNack(from: number, body: Record<string, unknown>, n: number): NackPacket {
  const sender = serverId(body.s, n);
  if (sender === undefined) throw new Malformed('nack names an unknown sender');
  const fromSeq = positive(body.a, 'nack start');
  const toSeq = positive(body.b, 'nack end');
  if (toSeq < fromSeq) throw new Malformed('nack range is empty');
  return { type: 'nack', from, sender, fromSeq, toSeq };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function serverId(value: unknown, n: number): number | undefined {
  return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= n ? (value as number) : undefined;
}

function positive(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) throw new Malformed(`${what} is not a positive integer`);
  return value as number;
}

function vector(value: unknown, n: number, what: string): number[] {
  if (!Array.isArray(value) || value.length !== n) throw new Malformed(`${what} does not have ${n} entries`);
  for (const x of value) {
    if (!Number.isSafeInteger(x) || x < 0) throw new Malformed(`${what} has a bad entry`);
  }
  return value as number[];
}
