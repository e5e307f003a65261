/**
 * The UDP transport: one dgram socket per daemon. Every datagram is sealed in
 * the authenticated envelope (wire/envelope.ts) for its one receiver.
 * Incoming datagrams are checked at this boundary, in order of cost: size,
 * version, addressing, MAC, replay, then the packet's JSON; one that fails is
 * counted by reason and dropped (never thrown). Outgoing packets are encoded
 * once even when the same packet goes to several servers; only the envelope
 * differs per receiver.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { Packet, ServerId } from '../broadcast/types.js';
import type { ServerAddress } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { decodePacket, encodePacket } from '../wire/codec.js';
import { maxCounter, open, seal } from '../wire/envelope.js';
import { ReplayGuard } from '../wire/replayGuard.js';
import { FaultFilter } from './faults.js';

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

export interface TransportIdentity {
  /** This server's run: strictly increasing across its restarts (storage/incarnation.ts). */
  readonly incarnation: number;
  /** The cluster key; empty when the daemon runs with --insecure. */
  readonly key: Buffer;
}

/** Socket buffers we ask the kernel for: bursts of a full send window from every peer must fit. */
const socketBufferBytes = 8 * 1024 * 1024;

export interface TransportCounters {
  datagramsIn: number;
  datagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  sendErrors: number;
  dropped: Record<DropReason, number>;
}

export class UdpTransport {
  private readonly socket: Socket;
  private readonly encoded = new WeakMap<Packet, Buffer>();
  /** Injected faults (tools/cluster partition, loss); none by default. */
  readonly faults = new FaultFilter();
  readonly counters: TransportCounters = {
    datagramsIn: 0,
    datagramsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    sendErrors: 0,
    dropped: Object.fromEntries(dropReasons.map((r) => [r, 0])) as Record<DropReason, number>,
  };
  private readonly guard: ReplayGuard;
  /** Next envelope counter per receiver. */
  private readonly counterTo: number[];

  private constructor(
    private readonly me: ServerAddress,
    private readonly identity: TransportIdentity,
    private readonly servers: readonly ServerAddress[],
    private readonly onPacket: (packet: Packet) => void,
    private readonly onDrop: (reason: DropReason, detail: string, from: string) => void,
  ) {
    this.guard = new ReplayGuard(identity.incarnation, servers.length);
    this.counterTo = new Array<number>(servers.length + 1).fill(1);
    this.socket = createSocket({ type: 'udp4', reuseAddr: false });
    this.socket.on('message', (buf, rinfo) => this.onMessage(buf, `${rinfo.address}:${rinfo.port}`));
  }

  static async open(
    me: ServerAddress,
    identity: TransportIdentity,
    servers: readonly ServerAddress[],
    onPacket: (packet: Packet) => void,
    onDrop: (reason: DropReason, detail: string, from: string) => void,
  ): Promise<UdpTransport> {
    const transport = new UdpTransport(me, identity, servers, onPacket, onDrop);
    await new Promise<void>((resolve, reject) => {
      transport.socket.once('error', (err: NodeJS.ErrnoException) => {
        const why = err.code === 'EADDRINUSE' ? 'is already in use' : `cannot be bound: ${err.message}`;
        reject(new ChorusError(err.code === 'EADDRINUSE' ? 'PORT_IN_USE' : 'NETWORK_FAILED', `UDP ${me.host}:${me.udpPort} ${why}`));
      });
      transport.socket.bind(me.udpPort, me.host, () => resolve());
    });
    transport.socket.on('error', () => transport.counters.sendErrors++);
    for (const set of [(n: number) => transport.socket.setRecvBufferSize(n), (n: number) => transport.socket.setSendBufferSize(n)]) {
      try {
        set(socketBufferBytes);
      } catch {
        // The kernel caps buffer sizes (net.core.rmem_max); the default still works, with more loss under load.
      }
    }
    return transport;
  }

  send(to: ServerId, packet: Packet): void {
    if (this.faults.dropOutgoing(to)) return;
    const server = this.servers[to - 1];
    let encoded = this.encoded.get(packet);
    if (!encoded) {
      encoded = encodePacket(packet);
      this.encoded.set(packet, encoded);
    }
    const counter = this.counterTo[to]++;
    if (counter > maxCounter) throw new Error(`envelope counter to server ${to} exhausted`);
    const header = { from: this.me.id, to, fromIncarnation: this.identity.incarnation, toIncarnation: this.guard.incarnationOf(to), counter };
    const buf = seal(this.identity.key, header, encoded);
    this.counters.datagramsOut++;
    this.counters.bytesOut += buf.length;
    this.socket.send(buf, server.udpPort, server.host, (err) => {
      if (err) this.counters.sendErrors++;
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private onMessage(buf: Buffer, address: string): void {
    this.counters.datagramsIn++;
    this.counters.bytesIn += buf.length;
    const opened = open(this.identity.key, buf, this.me.id, this.servers.length);
    if (!opened.ok) return this.drop(opened.reason, opened.detail, address);
    const { header } = opened;
    // Injected faults act before the replay guard, as a real lossy link would.
    if (this.faults.dropIncoming(header.from)) return;
    const verdict = this.guard.check(header);
    if (verdict === 'stale') return this.drop('stale', `addressed to run ${header.toIncarnation} of this server, which is run ${this.identity.incarnation}`, address);
    if (verdict === 'replayed') return this.drop('replayed', `server ${header.from} run ${header.fromIncarnation} counter ${header.counter} was already accepted or is too old`, address);
    const decoded = decodePacket(opened.packet, this.servers.length);
    if (!decoded.ok) return this.drop(decoded.reason, decoded.detail, address);
    if (decoded.packet.from !== header.from) return this.drop('malformed', `packet says it is from ${decoded.packet.from}, its envelope from ${header.from}`, address);
    this.onPacket(decoded.packet);
  }

  private drop(reason: DropReason, detail: string, address: string): void {
    this.counters.dropped[reason]++;
    this.onDrop(reason, detail, address);
  }
}
