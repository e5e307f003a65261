/**
 * The authenticated envelope around every datagram. Anyone can send a
 * daemon a UDP datagram; only holders of the cluster key can make one it
 * accepts, and no datagram is accepted twice.
 *
 *   byte  0       wire version (currently 4: one MAC for a datagram to several servers)
 *   byte  1       from: the sending server's id
 *   byte  2       to: the receiving server's id, or 0: every server of the cluster
 *   bytes 3..8    fromIncarnation: the sender's run, strictly increasing across its restarts
 *   bytes 9..40   HMAC-SHA256 with the cluster key over every other byte
 *   then, per receiver (one; or, with to 0, one per server of the cluster by id, the sender's unused):
 *     6 bytes     toIncarnation: the receiver's run as the sender last heard it (0: not yet)
 *     6 bytes     counter: per (sender run, receiver), from 1
 *   then          the packet (wire/codec.ts)
 *
 * A status or a new data packet goes to every other server alike: sealed
 * once, one HMAC for all of them (at a thousand messages a second the MACs
 * of per-receiver copies were a tenth of a daemon's CPU). The MAC is checked
 * before anything after the header is parsed. A replay is caught by the
 * receiver's ReplayGuard: a datagram addressed to an earlier run of the
 * receiver, from an earlier run of the sender, or whose counter (its own
 * entry's) it has already seen, changes nothing.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { maxServers } from '../config/clusterConfig.js';

export const wireVersion = 4;
const incarnationBytes = 6;
const macBytes = 32;
const macOffset = 9;
const receiversOffset = macOffset + macBytes;
const receiverBytes = 2 * incarnationBytes;
/** The envelope of a datagram to one server. */
export const envelopeBytes = receiversOffset + receiverBytes;
/** The largest envelope: to every server of the largest cluster. */
export const maxEnvelopeBytes = receiversOffset + maxServers * receiverBytes;
/** Incarnations and counters are 48-bit unsigned integers. */
export const maxCounter = 2 ** 48 - 1;

/** A datagram's envelope as its receiver reads it. */
export interface EnvelopeHeader {
  readonly from: number;
  readonly to: number;
  readonly fromIncarnation: number;
  readonly toIncarnation: number;
  readonly counter: number;
}

/** What a datagram says to one receiver: its run as the sender knows it, and the counter. */
export interface ReceiverEntry {
  readonly toIncarnation: number;
  readonly counter: number;
}

/** Frame a packet for one receiver and sign it. */
export function seal(key: Buffer, header: EnvelopeHeader, packet: Buffer): Buffer {
  return sealed(key, header.from, header.to, header.fromIncarnation, [header], packet);
}

/** Frame a packet for every server of the cluster (entries by server id; the sender's own is not read) and sign it once. */
export function sealForAll(key: Buffer, from: number, fromIncarnation: number, entries: readonly ReceiverEntry[], packet: Buffer): Buffer {
  return sealed(key, from, 0, fromIncarnation, entries, packet);
}

function sealed(key: Buffer, from: number, to: number, fromIncarnation: number, entries: readonly ReceiverEntry[], packet: Buffer): Buffer {
  const packetOffset = receiversOffset + entries.length * receiverBytes;
  const buf = Buffer.allocUnsafe(packetOffset + packet.length);
  buf[0] = wireVersion;
  buf[1] = from;
  buf[2] = to;
  buf.writeUIntBE(fromIncarnation, 3, incarnationBytes);
  entries.forEach(({ toIncarnation, counter }, i) => {
    const at = receiversOffset + i * receiverBytes;
    buf.writeUIntBE(toIncarnation, at, incarnationBytes);
    buf.writeUIntBE(counter, at + incarnationBytes, incarnationBytes);
  });
  packet.copy(buf, packetOffset);
  mac(key, buf).copy(buf, macOffset);
  return buf;
}

export type EnvelopeDropReason = 'oversized' | 'too-short' | 'wrong-version' | 'unknown-sender' | 'misdirected' | 'auth-failed';

export type OpenResult =
  | { readonly ok: true; readonly header: EnvelopeHeader; readonly packet: Buffer }
  | { readonly ok: false; readonly reason: EnvelopeDropReason; readonly detail: string };

/** The largest UDP payload over IPv4. */
export const maxUdpPayloadBytes = 65507;

/**
 * Check a datagram's envelope for server `me` of `serverCount`: size (at
 * most maxBytes), version, addressing, then the MAC. Never throws.
 */
export function open(key: Buffer, buf: Buffer, me: number, serverCount: number, maxBytes = maxUdpPayloadBytes): OpenResult {
  if (buf.length > maxBytes) return drop('oversized', `${buf.length} bytes, the limit is ${maxBytes}`);
  if (buf.length < envelopeBytes + 1) return drop('too-short', `${buf.length} bytes`);
  if (buf[0] !== wireVersion) return drop('wrong-version', `version ${buf[0]}, expected ${wireVersion}`);
  const from = buf[1];
  if (from < 1 || from > serverCount || from === me) return drop('unknown-sender', `sender ${from} is not a peer of server ${me} (1-${serverCount})`);
  const to = buf[2];
  if (to !== me && to !== 0) return drop('misdirected', `addressed to server ${to}, this is server ${me}`);
  const packetOffset = receiversOffset + (to === 0 ? serverCount : 1) * receiverBytes;
  if (buf.length < packetOffset + 1) return drop('too-short', `${buf.length} bytes, addressed to every server of ${serverCount}`);
  const expected = mac(key, buf);
  if (!timingSafeEqual(expected, buf.subarray(macOffset, receiversOffset))) return drop('auth-failed', 'the MAC does not match the cluster key');
  const mine = receiversOffset + (to === 0 ? me - 1 : 0) * receiverBytes;
  const header: EnvelopeHeader = {
    from,
    to: me,
    fromIncarnation: buf.readUIntBE(3, incarnationBytes),
    toIncarnation: buf.readUIntBE(mine, incarnationBytes),
    counter: buf.readUIntBE(mine + incarnationBytes, incarnationBytes),
  };
  return { ok: true, header, packet: buf.subarray(packetOffset) };
}

function mac(key: Buffer, buf: Buffer): Buffer {
  return createHmac('sha256', key).update(buf.subarray(0, macOffset)).update(buf.subarray(receiversOffset)).digest();
}

function drop(reason: EnvelopeDropReason, detail: string): OpenResult {
  return { ok: false, reason, detail };
}
