/**
 * Several servers in one process, each the real node core (src/node/node.ts)
 * with the real chat application and the real log-file code, in a simulated
 * world: the in-memory network, a simulated disk per server under the log
 * files (simFileSystem.ts: unsynced bytes torn or lost, undurable renames
 * undone when a server crashes), and simulated time. The daemon runs the same
 * node with UDP, the real disk and the event loop; nothing of the executor
 * is copied here.
 *
 * The cluster checks, as it goes, that no two servers' stable prefixes ever
 * disagree, that no server reuses a sequence number or a timestamp, that
 * none creates a message whose timestamp is not above a clock it already
 * advertised, and that what a server applied as stable stays final: after a
 * crash its clock is still past it, so no new message of its own can be
 * ordered before it. A violation throws with a trace of recent events.
 */
import { engineOptions, type EngineOptions } from '../broadcast/options.js';
import type { Message, Packet, ServerId } from '../broadcast/types.js';
import { Node, type NodeEvents, type SubmitOutcome } from '../node/node.js';
import type { Clock, Transport } from '../node/ports.js';
import { LogFiles } from '../storage/logFiles.js';
import { ChatAssembly } from '../server/assembly.js';
import type { ChatApplication } from '../server/chatApplication.js';
import { leaveOrphanedSessions, type ChatPort } from '../server/chatPort.js';
import { decodePacket, encodeDatagrams, networkDatagramBytes } from '../wire/codec.js';
import type { ChannelHandlers, RpcChannel } from '../client/session.js';
import type { ClusterConfig } from '../config/clusterConfig.js';
import { ChatService } from '../rpc/chatService.js';
import { RpcEndpoint } from '../rpc/endpoint.js';
import { defaultRpcLimits } from '../rpc/protocol.js';
import { ClientLink } from './clientLink.js';
import { plantedPort, plantedPushParts, plantedRpcs, type PlantedRpc } from './plantedRpc.js';
import { SimTimers } from './simTimers.js';
import { SimNetwork, type NetworkFaults, noFaults } from './network.js';
import { Random } from './random.js';
import { plantedDisk, plantedDisks, type PlantedDisk } from './plantedDisk.js';
import { plantedEngineParts, plantedEngines, type PlantedEngine } from './plantedEngine.js';
import { plantedExecutorParts, plantedExecutors, type PlantedExecutor } from './plantedExecutor.js';
import { SimFileSystem } from './simFileSystem.js';

export class SimulationFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimulationFailure';
  }
}

/** One server: its disk, its node while it is up, and what the checker remembers of it across crashes. */
export class SimServer {
  node: Node | undefined;
  app: ChatApplication | undefined;
  port: ChatPort | undefined;
  /** The client port: the daemon's RPC service and endpoint, reached over client links. */
  service: ChatService | undefined;
  endpoint: RpcEndpoint | undefined;
  readonly links = new Set<ClientLink>();
  readonly disk: SimFileSystem;
  /** The node asked for a step (after an input). */
  stepDue = false;
  /** When the node asked to be ticked. */
  wakeAt = Infinity;
  /** The stable prefix of the total order as this server applied it. */
  stable: Message[] = [];
  /** Own messages that left in a packet: seq -> ts and payload. */
  readonly sent = new Map<number, { ts: number; payload: string }>();
  readonly sentTs = new Set<number>();
  /** The highest clock this server ever advertised in a status. */
  advertisedClock = 0;
  /** The highest timestamp this server ever applied as stable. */
  appliedStableTs = 0;
  /** Own messages a submitter was told are durable. */
  readonly confirmed: Message[] = [];
  /** Crash right after the next step that leaves records being written. */
  crashWhileWriting = false;
  /** A slow disk: every fdatasync takes this much longer (0: the disk's own speed). */
  slowSyncMs = 0;
  crashes = 0;

  constructor(
    readonly id: ServerId,
    disk: SimFileSystem,
  ) {
    this.disk = disk;
  }

  get up(): boolean {
    return this.node !== undefined;
  }

  get dataDir(): string {
    return `/data/server${this.id}`;
  }
}

export interface SimClusterOptions {
  serverCount: number;
  seed: number;
  faults?: NetworkFaults;
  engine?: Partial<Omit<EngineOptions, 'me' | 'serverCount'>>;
  /** Time an fdatasync takes, drawn for each call from this range (ms). */
  syncDelayMs?: readonly [number, number];
  /** TEST ONLY: a deliberately broken variant of the engine, the executor or the log files. */
  broken?: SimBroken;
}

/** The deliberately broken variants the simulator can run (TEST ONLY). */
export type SimBroken = PlantedEngine | PlantedExecutor | PlantedDisk | PlantedRpc;
/** Whether the planted bug is one of `kind` (one of the lists of plantedDisk.ts, plantedEngine.ts, plantedExecutor.ts, plantedRpc.ts). */
function isPlanted<T extends SimBroken>(kind: readonly T[], broken: SimBroken | undefined): broken is T {
  return broken !== undefined && (kind as readonly SimBroken[]).includes(broken);
}

/** Messages per history segment file, and buffered before an unsynced write: few, so that histories cross many segments and crashes tear their writes. */
const simHistory = { segmentMessages: 8, bufferMessages: 3 };

export class SimCluster {
  readonly random: Random;
  readonly network: SimNetwork;
  readonly servers: SimServer[];
  now = 0;
  /** The longest stable prefix seen at any server: every server's stable list must be a prefix of it. */
  readonly globalStable: Message[] = [];
  readonly trace: string[] = [];
  /** The client port's timers and the client links' deliveries. */
  readonly timers = new SimTimers(() => this.now);
  /** Set once a client opened a link: from then on, each step lets the promises it settled run before the next. */
  private clientsActive = false;
  private readonly rpcConfig: ClusterConfig;
  private stepsAtSameTime = 0;
  /** A packet sent to several servers is encoded once, as the daemon's datagram gate does. */
  private readonly encoded = new WeakMap<Packet, Buffer[]>();

  constructor(readonly config: SimClusterOptions) {
    this.random = new Random(config.seed);
    this.network = new SimNetwork(this.random, config.faults ?? noFaults);
    this.rpcConfig = { file: 'simulated', servers: Array.from({ length: config.serverCount }, (_, i) => ({ id: i + 1, host: `server${i + 1}`, udpPort: 0, clientPort: 0 })) };
    const [minSyncMs, maxSyncMs] = config.syncDelayMs ?? [0, 0];
    this.servers = Array.from({ length: config.serverCount }, (_, i) => {
      const disk = new SimFileSystem(
        () => this.now,
        () => minSyncMs + this.random.next() * (maxSyncMs - minSyncMs) + this.servers[i].slowSyncMs,
      );
      disk.makeDir('/data');
      return new SimServer(i + 1, disk);
    });
    for (const server of this.servers) this.start(server);
  }

  server(id: ServerId): SimServer {
    return this.servers[id - 1];
  }

  /** Broadcast a raw payload from a server; `onConfirmed` runs once it is durable there. False if down or refused. */
  broadcast(id: ServerId, payload: string, onConfirmed?: (m: Message) => void): boolean {
    const node = this.server(id).node;
    if (!node) return false;
    let refused = false;
    node.submit(payload, this.outcome(this.server(id), onConfirmed, () => (refused = true)));
    return !refused;
  }

  private outcome(server: SimServer, onConfirmed: ((m: Message) => void) | undefined, onRefused: SubmitOutcome['refused']) {
    return {
      confirmed: (m: Message) => {
        server.confirmed.push(m);
        onConfirmed?.(m);
      },
      refused: onRefused,
    };
  }

  /** Crash: everything not durable on its disk is lost, but a random prefix of it (torn). */
  crash(id: ServerId): void {
    const server = this.server(id);
    if (!server.node) return;
    server.node.crash();
    server.endpoint?.stop(true);
    for (const link of server.links) link.serverGone();
    const lost = server.disk.crash(this.random);
    server.node = server.app = server.port = server.service = server.endpoint = undefined;
    server.crashWhileWriting = false;
    server.stepDue = false;
    server.wakeAt = Infinity;
    server.crashes++;
    this.log(`crash ${id}: ${lost} unsynced journal bytes lost`);
  }

  /** Make the server's disk slow (each fdatasync `extraMs` longer) for `forMs` of simulated time: the server is slow, not gone. */
  slowDisk(id: ServerId, extraMs: number, forMs: number): void {
    const server = this.server(id);
    server.slowSyncMs = extraMs;
    this.log(`disk of ${id} slow: fdatasync ${extraMs.toFixed(0)} ms longer for ${forMs.toFixed(0)} ms`);
    this.timers.after(forMs, () => {
      if (server.slowSyncMs !== extraMs) return;
      server.slowSyncMs = 0;
      this.log(`disk of ${id} back to its speed`);
    });
  }

  /** Crash the server at its next step that leaves a journal sync in flight: a crash in the middle of a write. */
  crashWhileWriting(id: ServerId): void {
    const server = this.server(id);
    if (server.node) server.crashWhileWriting = true;
  }

  restart(id: ServerId): void {
    const server = this.server(id);
    if (server.node) return;
    this.start(server);
  }

  /** Open the server's log files and recover its node, as the daemon does; then its lost sessions leave, as the chat server's do. */
  private start(server: SimServer): void {
    const { serverCount, broken } = this.config;
    // A planted storage bug is a disk that behaves as the bug would (plantedDisk.ts).
    const disk = isPlanted(plantedDisks, broken) ? plantedDisk(server.disk, server.dataDir, broken) : server.disk;
    let opened;
    try {
      opened = LogFiles.open({
        fs: disk,
        dir: server.dataDir,
        serverId: server.id,
        serverCount,
        wallClockMs: this.now,
      });
    } catch (err) {
      throw this.failure(`server ${server.id} cannot open its log files: ${(err as Error).message}`);
    }
    const { files, loaded } = opened;
    if (server.crashes > 0) {
      const torn = loaded.tornTail ? `, a torn last line of ${loaded.tornTail.bytes} bytes dropped` : '';
      this.log(`restart ${server.id} from ${loaded.snapshot ? `snapshot generation ${loaded.generation} and ` : ''}${loaded.records.length} journal records${torn}`);
    }
    // The application restarts from the snapshot's stable state: what it applied after that is applied again.
    const snapshotStableTs = loaded.snapshot?.engine.stableTs ?? 0;
    server.stable = server.stable.filter((m) => m.ts <= snapshotStableTs);
    const engine = engineOptions(server.id, serverCount, {
      ...this.config.engine,
      ...(isPlanted(plantedEngines, broken) ? { parts: plantedEngineParts(broken) } : {}),
    });
    const assembly = new ChatAssembly({ fs: disk, dir: server.dataDir, ...simHistory });
    try {
      server.node = Node.recover({
        options: {
          engine,
          snapshotJournalBytes: 64 * 1024,
          snapshotIntervalMs: Infinity,
          ...(isPlanted(plantedExecutors, broken) ? { executor: plantedExecutorParts(broken) } : {}),
        },
        loaded,
        journal: files,
        transport: this.transport(server),
        clock: this.clock(server),
        application: assembly.application,
        events: this.events(server),
      });
    } catch (err) {
      if (err instanceof SimulationFailure) throw err;
      throw this.failure(`server ${server.id} cannot recover: ${(err as Error).message}`);
    }
    const clock = server.node.protocol.clock;
    if (clock < server.appliedStableTs) {
      throw this.failure(`server ${server.id} applied messages up to ts ${server.appliedStableTs} as stable, but restarts with clock ${clock}: its next message would be ordered before them`);
    }
    const core = assembly.attach(server.node);
    server.app = core.app;
    server.port = core.port;
    this.startClientPort(server);
    leaveOrphanedSessions(core);
  }

  /** The server's RPC service and endpoint, as the daemon's chat server has them; session ids tell its runs apart by its crash count. */
  private startClientPort(server: SimServer): void {
    const broken = this.config.broken;
    const port = isPlanted(plantedRpcs, broken) ? plantedPort(this.recordingPort(server), broken) : this.recordingPort(server);
    server.service = new ChatService(port, this.rpcConfig, this.timers);
    const pushParts = isPlanted(plantedRpcs, broken) ? plantedPushParts(broken) : undefined;
    server.endpoint = new RpcEndpoint(server.service, defaultRpcLimits, this.timers, `${server.id}.${server.crashes}`, pushParts);
  }

  /** The port with every operation confirmed to a client remembered, for the final check. */
  private recordingPort(server: SimServer): ChatPort {
    const port = server.port!;
    return { ...port, submit: (op, outcome, after) => port.submit(op, this.outcome(server, outcome.confirmed, outcome.refused), after) };
  }

  /** A client connects to server `id` (fails if it is down): the channel its session talks through. */
  openChannel(id: ServerId, handlers: ChannelHandlers): Promise<RpcChannel> {
    const server = this.server(id);
    if (!server.endpoint) return Promise.reject(new Error(`server ${id} is down`));
    this.clientsActive = true;
    const link = new ClientLink(server.endpoint, this.timers, this.random, () => this.now, handlers, (closed) => server.links.delete(closed));
    server.links.add(link);
    return Promise.resolve(link.channel);
  }

  private transport(server: SimServer): Transport {
    return {
      send: (to: readonly ServerId[], packet: Packet) => {
        if (packet.type === 'data') this.checkOwnMessages(server, packet.messages);
        if (packet.type === 'status') server.advertisedClock = Math.max(server.advertisedClock, packet.tsVector[server.id - 1]);
        let datagrams = this.encoded.get(packet);
        if (!datagrams) {
          datagrams = encodeDatagrams(packet, networkDatagramBytes);
          this.encoded.set(packet, datagrams);
        }
        for (const receiver of to) for (const datagram of datagrams) this.network.send(server.id, receiver, datagram, this.now);
      },
    };
  }

  private clock(server: SimServer): Clock {
    return {
      now: () => this.now,
      stepSoon: () => (server.stepDue = true),
      wakeAt: (at) => (server.wakeAt = at),
    };
  }

  private events(server: SimServer): NodeEvents {
    return {
      sequenced: (m) => {
        if (m.ts <= server.advertisedClock) {
          throw this.failure(`server ${server.id} created seq ${m.seq} with ts ${m.ts}, but its clock ${server.advertisedClock} had already left in a status`);
        }
      },
      applied: (_ordered, stable) => {
        for (const m of stable) this.deliverStable(server, m);
        if (stable.length > 0) server.appliedStableTs = Math.max(server.appliedStableTs, stable[stable.length - 1].ts);
      },
      view: (view) => this.log(`server ${server.id} view {${view.join(',')}}`),
      storageFailed: (error) => {
        throw this.failure(`server ${server.id}: ${error.message}`);
      },
    };
  }

  /** Write a snapshot and start a new journal, if everything is durable (else false). */
  snapshot(id: ServerId): boolean {
    return this.server(id).node?.snapshot() ?? false;
  }

  /** Run until simulated time `until` (ms). */
  async runUntil(until: number): Promise<void> {
    while (await this.stepAndSettle(until));
    this.now = Math.max(this.now, until);
  }

  /** Run until predicate holds, or fail after maxMs of simulated time. */
  async runUntilTrue(predicate: () => boolean, maxMs: number, what: string): Promise<void> {
    const deadline = this.now + maxMs;
    while (!predicate()) {
      if (!(await this.stepAndSettle(deadline))) {
        if (predicate()) return;
        throw this.failure(`not reached within ${maxMs} ms of simulated time: ${what}`);
      }
    }
  }

  /**
   * One step, then (once clients are about) every promise it settled runs
   * to its next wait, as the event loop would run them before its next
   * event: the RPC service's answers and the sessions' continuations happen
   * at the simulated time of the step that caused them. Nothing else runs
   * in this process meanwhile, so the run stays one function of the seed.
   */
  private async stepAndSettle(limit: number): Promise<boolean> {
    const stepped = this.step(limit);
    if (stepped && this.clientsActive) await new Promise((resolve) => setImmediate(resolve));
    return stepped;
  }

  /** Process the next event due at or before `limit`. Returns false if there is none. */
  step(limit: number): boolean {
    for (const server of this.servers) {
      if (!server.node || !server.stepDue) continue;
      server.stepDue = false;
      this.countStepAt(this.now);
      server.node.step();
      if (server.crashWhileWriting && server.disk.nextSyncAt() !== Infinity) this.crash(server.id);
      return true;
    }
    let next = this.network.nextDeliveryAt();
    let action: (() => void) | undefined;
    const timerAt = this.timers.nextAt();
    if (timerAt < next) {
      next = timerAt;
      action = () => this.timers.runNext();
    }
    for (const server of this.servers) {
      const node = server.node;
      if (!node) continue;
      const syncAt = server.disk.nextSyncAt();
      if (syncAt < next) {
        next = syncAt;
        action = () => server.disk.finishSyncs(this.now);
      }
      if (server.wakeAt < next) {
        next = server.wakeAt;
        action = () => {
          server.wakeAt = Infinity;
          node.tick();
        };
      }
    }
    const at = Math.max(this.now, next);
    if (at > limit || at === Infinity) return false;
    this.countStepAt(at);
    this.now = at;
    if (action) action();
    else for (const d of this.network.due(at)) this.deliver(d.from, d.to, d.bytes);
    return true;
  }

  private countStepAt(at: number): void {
    this.stepsAtSameTime = at === this.now ? this.stepsAtSameTime + 1 : 0;
    if (this.stepsAtSameTime > 100_000) throw this.failure(`livelock: time stuck at ${at} ms`);
  }

  private deliver(from: ServerId, to: ServerId, bytes: Uint8Array): void {
    const node = this.server(to).node;
    if (!node) return;
    const decoded = decodePacket(bytes, this.config.serverCount);
    if (!decoded.ok) throw this.failure(`codec rejected a datagram from ${from}: ${decoded.reason} ${decoded.detail}`);
    node.receive(decoded.packet);
  }

  /** Among the messages that ever left a server, a seq never stands for two messages, nor a timestamp for two seqs. */
  private checkOwnMessages(server: SimServer, messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.sender !== server.id) continue;
      const earlier = server.sent.get(m.seq);
      if (earlier) {
        if (earlier.ts !== m.ts || earlier.payload !== m.payload) {
          throw this.failure(`server ${server.id} reused seq ${m.seq}: first ts ${earlier.ts}, now ts ${m.ts}`);
        }
        continue;
      }
      if (server.sentTs.has(m.ts)) throw this.failure(`server ${server.id} reused timestamp ${m.ts} (seq ${m.seq})`);
      server.sent.set(m.seq, { ts: m.ts, payload: m.payload });
      server.sentTs.add(m.ts);
    }
  }

  private deliverStable(server: SimServer, m: Message): void {
    const index = server.stable.length;
    server.stable.push(m);
    const reference = this.globalStable[index];
    if (reference === undefined) {
      this.globalStable.push(m);
      return;
    }
    if (reference.sender !== m.sender || reference.seq !== m.seq || reference.payload !== m.payload) {
      throw this.failure(`stable prefixes disagree at position ${index}: server ${server.id} has ${m.sender}:${m.seq}, another has ${reference.sender}:${reference.seq}`);
    }
  }

  log(line: string): void {
    this.trace.push(`[${this.now.toFixed(1)} ms] ${line}`);
    if (this.trace.length > 4000) this.trace.splice(0, 2000);
  }

  failure(message: string): SimulationFailure {
    return new SimulationFailure(`${message}\nlast events:\n${this.trace.slice(-40).join('\n')}`);
  }

  /** All up servers hold the same messages, all stable and collected, nothing waiting for a step or a sync. */
  quiescent(): boolean {
    const up = this.servers.filter((s) => s.node);
    const first = up[0]?.node?.protocol;
    if (!first) return true;
    return up.every((s) => {
      const p = s.node!.protocol;
      return (
        !s.stepDue &&
        s.disk.nextSyncAt() === Infinity &&
        p.unstableCount === 0 &&
        p.storeCount === 0 &&
        p.queuedCount === 0 &&
        p.seqVector.every((seq, i) => seq === first.seqVector[i])
      );
    });
  }
}
