/**
 * The gate every datagram passes, out and in, without any socket: sealing
 * in the authenticated envelope for its receivers (one MAC for all), and on the way in the
 * checks in order of cost (size, version, addressing, MAC, replay, then the
 * packet's body). Pure apart from the HMAC, so the fuzz tests drive it directly.
 */
import type { Packet, ServerId } from '../broadcast/types.js';
import { decodePacket, encodeDatagrams } from '../wire/codec.js';
import { maxCounter, open, seal, sealForAll, type ReceiverEntry } from '../wire/envelope.js';
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

  constructor(private readonly identity: GateIdentity) {
    this.guard = new ReplayGuard(identity.incarnation, identity.serverCount);
    this.counterTo = new Array<number>(identity.serverCount + 1).fill(1);
  }

  /** The datagrams carrying `packet` to the servers `to`: encoded once and, for several, sealed once for all of them. */
  seal(to: readonly ServerId[], packet: Packet): Buffer[] {
    const { me, incarnation, key, maxDatagramBytes } = this.identity;
    const bodies = encodeDatagrams(packet, maxDatagramBytes);
    if (to.length === 1) {
      const [receiver] = to;
      return bodies.map((body) => seal(key, { from: me, to: receiver, fromIncarnation: incarnation, ...this.entryFor(receiver) }, body));
    }
    return bodies.map((body) => sealForAll(key, me, incarnation, this.entries(to), body));
  }

  /** An entry per server of the cluster, by id: the receivers' runs and counters; the others' name no run, so they refuse it (as stale). */
  private entries(to: readonly ServerId[]): ReceiverEntry[] {
    const entries: ReceiverEntry[] = [];
    for (let s = 1; s <= this.identity.serverCount; s++) entries.push(to.includes(s) ? this.entryFor(s) : { toIncarnation: 0, counter: 0 });
    return entries;
  }

  private entryFor(to: ServerId): ReceiverEntry {
    const counter = this.counterTo[to]++;
    if (counter > maxCounter) throw new Error(`envelope counter to server ${to} exhausted`);
    return { toIncarnation: this.guard.incarnationOf(to), counter };
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
