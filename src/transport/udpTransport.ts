/**
 * The UDP transport: one dgram socket per daemon. Incoming datagrams are
 * decoded at this boundary; one that does not decode is counted by reason
 * and dropped (never thrown). Outgoing packets are encoded once even when
 * the same packet goes to several servers.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { Packet, ServerId } from '../broadcast/types.js';
import type { ServerAddress } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { decodePacket, encodePacket, type DropReason } from '../wire/codec.js';
import { FaultFilter } from './faults.js';

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
    dropped: { 'too-short': 0, 'wrong-version': 0, 'unknown-type': 0, malformed: 0, 'unknown-sender': 0, oversized: 0 },
  };

  private constructor(
    private readonly servers: readonly ServerAddress[],
    private readonly onPacket: (packet: Packet) => void,
    private readonly onDrop: (reason: DropReason, detail: string, from: string) => void,
  ) {
    this.socket = createSocket({ type: 'udp4', reuseAddr: false });
    this.socket.on('message', (buf, rinfo) => this.onMessage(buf, `${rinfo.address}:${rinfo.port}`));
  }

  static async open(
    me: ServerAddress,
    servers: readonly ServerAddress[],
    onPacket: (packet: Packet) => void,
    onDrop: (reason: DropReason, detail: string, from: string) => void,
  ): Promise<UdpTransport> {
    const transport = new UdpTransport(servers, onPacket, onDrop);
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
    let buf = this.encoded.get(packet);
    if (!buf) {
      buf = encodePacket(packet);
      this.encoded.set(packet, buf);
    }
    this.counters.datagramsOut++;
    this.counters.bytesOut += buf.length;
    this.socket.send(buf, server.udpPort, server.host, (err) => {
      if (err) this.counters.sendErrors++;
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private onMessage(buf: Buffer, from: string): void {
    this.counters.datagramsIn++;
    this.counters.bytesIn += buf.length;
    const decoded = decodePacket(buf, this.servers.length);
    if (!decoded.ok) {
      this.counters.dropped[decoded.reason]++;
      this.onDrop(decoded.reason, decoded.detail, from);
      return;
    }
    if (this.faults.dropIncoming(decoded.packet.from)) return;
    this.onPacket(decoded.packet);
  }
}
