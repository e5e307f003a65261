/**
 * The gate every datagram passes, out and in, without any socket: sealing
 * in the authenticated envelope for one receiver, and on the way in the
 * checks in order of cost (size, version, addressing, MAC, replay, then the
 * packet's body). Pure apart from the HMAC, so the fuzz tests drive it directly.
 */
import type { Packet, ServerId } from '../broadcast/types.js';
import { decodePacket, encodeDatagrams } from '../wire/codec.js';
import { maxCounter, open, seal } from '../wire/envelope.js';
import { ReplayGuard } from '../wire/replayGuard.js';

/** Why an incoming datagram was dropped; each has a counter in `tools/cluster status`. */
export const dropReasons = [
  'auth-failed',
  'unknown-sender',
  'misdirected',
  'malformed',
  'oversized',
  'too-short',
  'wrong-version',
  'unknown-type',
  'replayed',
  'stale',
] as const;
export type DropReason = (typeof dropReasons)[number];
/** Normal for a moment after any server restarts (addressed to its earlier run, or sent before the sender heard of this one); the others mean a misconfigured or hostile sender. */
export const expectedDropReasons: readonly DropReason[] = ['stale'];

/** Datagrams dropped for a reason a healthy cluster never has (forged, wrong version, ...): what status calls bad. */
export function badDatagramCount(dropped: Readonly<Record<DropReason, number>>): number {
  return dropReasons.filter((r) => !expectedDropReasons.includes(r)).reduce((total, r) => total + dropped[r], 0);
}

export interface GateIdentity {
  readonly me: ServerId;
  readonly serverCount: number;
  /** This server's run: strictly increasing across its restarts (storage/logFiles.ts). */
  readonly incarnation: number;
  /** The cluster key; empty when the daemon runs with --insecure. */
  readonly key: Buffer;
  /** Larger datagrams are dropped as oversized (wire/codec.ts receiveLimitBytes). */
  readonly maxReceiveBytes: number;
  /** Data packets are split into datagrams of at most this many bytes (a single larger message travels alone). */
  readonly maxDatagramBytes: number;
}

export type Admission = { readonly ok: true; readonly packet: Packet } | { readonly ok: false; readonly reason: DropReason; readonly detail: string };

export class DatagramGate {
  private readonly guard: ReplayGuard;
  /** Next envelope counter per receiver. */
  private readonly counterTo: number[];
  private readonly encoded = new WeakMap<Packet, Buffer[]>();

  constructor(private readonly identity: GateIdentity) {
    this.guard = new ReplayGuard(identity.incarnation, identity.serverCount);
    this.counterTo = new Array<number>(identity.serverCount + 1).fill(1);
  }

  /** The datagrams carrying `packet` to server `to` (the packet is encoded once for all receivers). */
  seal(to: ServerId, packet: Packet): Buffer[] {
    let encoded = this.encoded.get(packet);
    if (!encoded) {
      encoded = encodeDatagrams(packet, this.identity.maxDatagramBytes);
      this.encoded.set(packet, encoded);
    }
    const { me, incarnation, key } = this.identity;
    return encoded.map((body) => {
      const counter = this.counterTo[to]++;
      if (counter > maxCounter) throw new Error(`envelope counter to server ${to} exhausted`);
      return seal(key, { from: me, to, fromIncarnation: incarnation, toIncarnation: this.guard.incarnationOf(to), counter }, body);
    });
  }

  /**
   * Check a datagram. `blocked(from)` lets injected faults drop an
   * authenticated datagram before the replay guard sees it, as a lossy link would.
   */
  admit(buf: Buffer, blocked: (from: ServerId) => boolean = () => false): Admission | undefined {
    const { me, serverCount, key, incarnation, maxReceiveBytes } = this.identity;
    const opened = open(key, buf, me, serverCount, maxReceiveBytes);
    if (!opened.ok) return opened;
    const { header } = opened;
    if (blocked(header.from)) return undefined;
    const verdict = this.guard.check(header);
    if (verdict === 'stale') return drop('stale', `addressed to run ${header.toIncarnation} of this server, which is run ${incarnation}`);
    if (verdict === 'replayed') return drop('replayed', `server ${header.from} run ${header.fromIncarnation} counter ${header.counter} was already accepted or is too old`);
    const decoded = decodePacket(opened.packet, serverCount);
    if (!decoded.ok) return decoded;
    if (decoded.packet.from !== header.from) return drop('malformed', `the packet says it is from ${decoded.packet.from}, its envelope from ${header.from}`);
    return decoded;
  }
}

function drop(reason: DropReason, detail: string): Admission {
  return { ok: false, reason, detail };
}
