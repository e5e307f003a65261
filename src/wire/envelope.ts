/**
 * The authenticated envelope around every datagram. Anyone can send a
 * daemon a UDP datagram; only holders of the cluster key can make one it
 * accepts, and no datagram is accepted twice.
 *
 *   byte  0       wire version (currently 3: binary packets)
 *   byte  1       from: the sending server's id
 *   byte  2       to: the receiving server's id
 *   bytes 3..8    fromIncarnation: the sender's run, strictly increasing across its restarts
 *   bytes 9..14   toIncarnation: the receiver's run as the sender last heard it (0: not yet)
 *   bytes 15..20  counter: per (sender run, receiver), from 1
 *   bytes 21..52  HMAC-SHA256 with the cluster key over every other byte
 *   bytes 53..    the packet (wire/codec.ts)
 *
 * The MAC is checked before anything after the header is parsed. A replay
 * is caught by the receiver's ReplayGuard: a datagram addressed to an
 * earlier run of the receiver, from an earlier run of the sender, or whose
 * counter it has already seen, changes nothing.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const wireVersion = 3;
const incarnationBytes = 6;
const macBytes = 32;
const macOffset = 21;
export const envelopeBytes = macOffset + macBytes;
/** Incarnations and counters are 48-bit unsigned integers. */
export const maxCounter = 2 ** 48 - 1;

export interface EnvelopeHeader {
  readonly from: number;
  readonly to: number;
  readonly fromIncarnation: number;
  readonly toIncarnation: number;
  readonly counter: number;
}

/** Frame a packet for one receiver and sign it. */
export function seal(key: Buffer, header: EnvelopeHeader, packet: Buffer): Buffer {
  const buf = Buffer.allocUnsafe(envelopeBytes + packet.length);
  buf[0] = wireVersion;
  buf[1] = header.from;
  buf[2] = header.to;
  buf.writeUIntBE(header.fromIncarnation, 3, incarnationBytes);
  buf.writeUIntBE(header.toIncarnation, 9, incarnationBytes);
  buf.writeUIntBE(header.counter, 15, incarnationBytes);
  packet.copy(buf, envelopeBytes);
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
  if (buf[2] !== me) return drop('misdirected', `addressed to server ${buf[2]}, this is server ${me}`);
  const expected = mac(key, buf);
  if (!timingSafeEqual(expected, buf.subarray(macOffset, envelopeBytes))) return drop('auth-failed', 'the MAC does not match the cluster key');
  const header: EnvelopeHeader = {
    from,
    to: me,
    fromIncarnation: buf.readUIntBE(3, incarnationBytes),
    toIncarnation: buf.readUIntBE(9, incarnationBytes),
    counter: buf.readUIntBE(15, incarnationBytes),
  };
  return { ok: true, header, packet: buf.subarray(envelopeBytes) };
}

function mac(key: Buffer, buf: Buffer): Buffer {
  return createHmac('sha256', key).update(buf.subarray(0, macOffset)).update(buf.subarray(envelopeBytes)).digest();
}

function drop(reason: EnvelopeDropReason, detail: string): OpenResult {
  return { ok: false, reason, detail };
}
