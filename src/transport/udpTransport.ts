/**
 * The UDP transport: one dgram socket per daemon. Every datagram passes the
 * gate (gate.ts): sealed in the authenticated envelope for its one receiver
 * on the way out, checked on the way in; one that fails is counted by
 * reason and dropped (never thrown).
 */
import { createSocket, type Socket } from 'node:dgram';
import type { Packet, ServerId } from '../broadcast/types.js';
import type { ServerAddress } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { badDatagramCount, DatagramGate, dropReasons, expectedDropReasons, type DropReason, type GateIdentity } from './gate.js';
import { FaultFilter } from './faults.js';
import { keptAddressLookup } from './hostLookup.js';

export { badDatagramCount, dropReasons, expectedDropReasons, type DropReason };

/** Socket buffers we ask the kernel for: bursts of a full send window from every peer must fit. */
const socketBufferBytes = 8 * 1024 * 1024;

export interface TransportCounters {
  datagramsIn: number;
  datagramsOut: number;
  /** Datagrams carrying messages (originals and retransmissions), among datagramsOut. */
  dataDatagramsOut: number;
  bytesIn: number;
  bytesOut: number;
  sendErrors: number;
  dropped: Record<DropReason, number>;
}

export class UdpTransport {
  private readonly socket: Socket;
  private readonly gate: DatagramGate;
  /** Injected faults (tools/cluster partition, loss); none by default. */
  readonly faults = new FaultFilter();
  readonly counters: TransportCounters = {
    datagramsIn: 0,
    datagramsOut: 0,
    dataDatagramsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    sendErrors: 0,
    dropped: Object.fromEntries(dropReasons.map((r) => [r, 0])) as Record<DropReason, number>,
  };

  private constructor(
    identity: GateIdentity,
    private readonly servers: readonly ServerAddress[],
    private readonly onPacket: (packet: Packet) => void,
    private readonly onDrop: (reason: DropReason, detail: string, from: string) => void,
  ) {
    this.gate = new DatagramGate(identity);
    this.socket = createSocket({ type: 'udp4', reuseAddr: false, lookup: keptAddressLookup() });
    this.socket.on('message', (buf, rinfo) => this.onMessage(buf, `${rinfo.address}:${rinfo.port}`));
  }

  static async open(
    me: ServerAddress,
    identity: Omit<GateIdentity, 'me' | 'serverCount'>,
    servers: readonly ServerAddress[],
    onPacket: (packet: Packet) => void,
    onDrop: (reason: DropReason, detail: string, from: string) => void,
  ): Promise<UdpTransport> {
    const transport = new UdpTransport({ ...identity, me: me.id, serverCount: servers.length }, servers, onPacket, onDrop);
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

  send(to: readonly ServerId[], packet: Packet): void {
    const datagrams = this.gate.seal(to, packet);
    for (const id of to) {
      const server = this.servers[id - 1];
      for (const buf of datagrams) {
        if (this.faults.dropOutgoing(id)) continue;
        this.counters.datagramsOut++;
        if (packet.type === 'data') this.counters.dataDatagramsOut++;
        this.counters.bytesOut += buf.length;
        this.socket.send(buf, server.udpPort, server.host, this.sent);
      }
    }
  }

  /** One callback for every send (a closure each was an allocation per datagram). */
  private readonly sent = (err: Error | null): void => {
    if (err) this.counters.sendErrors++;
  };

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private onMessage(buf: Buffer, address: string): void {
    this.counters.datagramsIn++;
    this.counters.bytesIn += buf.length;
    const admitted = this.gate.admit(buf, (from) => this.faults.dropIncoming(from));
    if (admitted === undefined) return;
    if (!admitted.ok) return this.drop(admitted.reason, admitted.detail, address);
    this.onPacket(admitted.packet);
  }

  private drop(reason: DropReason, detail: string, address: string): void {
    this.counters.dropped[reason]++;
    this.onDrop(reason, detail, address);
  }
}
