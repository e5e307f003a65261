/**
 * Several real engines on the in-memory network, in one process, on a
 * simulated clock. Storage here is ideal (a journal record is durable the
 * moment it is handed over); crash() throws away everything else.
 *
 * The cluster checks, after every step, that no two servers' stable
 * prefixes disagree, and records a short trace of what happened so that a
 * failure can be read.
 */
import { Engine, defaultEngineLimits, defaultEngineTimers, type EngineOptions } from '../broadcast/engine.js';
import type { JournalRecord, Message, ServerId } from '../broadcast/types.js';
import { decodePacket, encodePacket, networkDatagramBytes } from '../wire/codec.js';
import { SimNetwork, type NetworkFaults, noFaults } from './network.js';
import { Random } from './random.js';

export class SimNode {
  engine: Engine | undefined;
  /** Durable journal records, in order. */
  readonly journal: JournalRecord[] = [];
  /** The stable prefix of the total order, as this node delivered it. */
  stable: Message[] = [];
  /** Every (sender, seq) ever sent in a packet by this node, to check nothing is reused across restarts. */
  readonly sentIds = new Map<number, number>();
  viewLog: (readonly ServerId[])[] = [];
  acknowledged: Message[] = [];

  constructor(readonly id: ServerId) {}

  get up(): boolean {
    return this.engine !== undefined;
  }
}

export interface SimClusterOptions {
  serverCount: number;
  seed: number;
  faults?: NetworkFaults;
  engine?: Partial<EngineOptions>;
}

export class SimCluster {
  readonly random: Random;
  readonly network: SimNetwork;
  readonly nodes: SimNode[];
  now = 0;
  /** The longest stable prefix seen at any node: every node's stable list must be a prefix of it. */
  readonly globalStable: Message[] = [];
  readonly trace: string[] = [];
  private readonly options: (id: ServerId) => EngineOptions;
  private nextTag = 1;
  private stepsAtSameTime = 0;

  constructor(readonly config: SimClusterOptions) {
    this.random = new Random(config.seed);
    this.network = new SimNetwork(this.random, config.faults ?? noFaults);
    this.options = (me) => ({
      me,
      serverCount: config.serverCount,
      maxDatagramBytes: networkDatagramBytes,
      ...defaultEngineTimers,
      ...defaultEngineLimits,
      ...config.engine,
    });
    this.nodes = Array.from({ length: config.serverCount }, (_, i) => {
      const node = new SimNode(i + 1);
      node.engine = new Engine(this.options(i + 1), 0);
      return node;
    });
  }

  node(id: ServerId): SimNode {
    return this.nodes[id - 1];
  }

  broadcast(id: ServerId, payload: string): boolean {
    const engine = this.node(id).engine;
    if (!engine) return false;
    const result = engine.broadcast(payload, this.nextTag++, this.now);
    this.flush(this.node(id));
    return result === 'accepted';
  }

  crash(id: ServerId): void {
    const node = this.node(id);
    node.engine = undefined;
    node.stable = [];
    this.log(`crash ${id}`);
  }

  restart(id: ServerId): void {
    const node = this.node(id);
    const recovered = Engine.recover(this.options(id), this.now, undefined, node.journal);
    if (!('engine' in recovered)) throw new Error(`server ${id} cannot recover: record ${recovered.badRecord}: ${recovered.reason}`);
    node.engine = recovered.engine;
    this.log(`restart ${id} from ${node.journal.length} records`);
    this.flush(node);
  }

  /** Run until simulated time `until` (ms). */
  runUntil(until: number): void {
    while (this.step(until));
    this.now = Math.max(this.now, until);
  }

  /** Run until predicate holds, or fail after maxMs of simulated time. */
  runUntilTrue(predicate: () => boolean, maxMs: number, what: string): void {
    const deadline = this.now + maxMs;
    while (!predicate()) {
      if (!this.step(deadline)) {
        if (predicate()) return;
        throw new Error(`not reached within ${maxMs} ms of simulated time: ${what}\n${this.trace.slice(-30).join('\n')}`);
      }
    }
  }

  /** Process the next event due at or before `limit`. Returns false if there is none. */
  step(limit: number): boolean {
    const nextPacket = this.network.nextDeliveryAt();
    let nextTimer = Infinity;
    let timerNode: SimNode | undefined;
    for (const node of this.nodes) {
      const at = node.engine?.nextDeadline() ?? Infinity;
      if (at < nextTimer) {
        nextTimer = at;
        timerNode = node;
      }
    }
    const at = Math.max(this.now, Math.min(nextPacket, nextTimer));
    if (at > limit || at === Infinity) return false;
    this.stepsAtSameTime = at === this.now ? this.stepsAtSameTime + 1 : 0;
    if (this.stepsAtSameTime > 100_000) throw new Error(`livelock: time stuck at ${at} ms\n${this.trace.slice(-30).join('\n')}`);
    this.now = at;
    if (nextPacket <= nextTimer) {
      for (const d of this.network.due(at)) this.deliver(d.from, d.to, d.bytes);
    } else if (timerNode?.engine) {
      timerNode.engine.tick(at);
      this.flush(timerNode);
    }
    return true;
  }

  private deliver(from: ServerId, to: ServerId, bytes: Uint8Array): void {
    const node = this.node(to);
    if (!node.engine) return;
    const decoded = decodePacket(bytes, this.config.serverCount);
    if (!decoded.ok) throw new Error(`codec rejected a datagram from ${from}: ${decoded.reason} ${decoded.detail}`);
    node.engine.receive(decoded.packet, this.now);
    this.flush(node);
  }

  /** Act on the engine's Ready in the required order: persist, send, acknowledge, deliver. */
  private flush(node: SimNode): void {
    const engine = node.engine;
    if (!engine) return;
    const ready = engine.ready();
    node.journal.push(...ready.records);
    for (const { to, packet } of ready.packets) {
      if (packet.type === 'data') this.noteSent(node, packet.messages);
      this.network.send(node.id, to, encodePacket(packet), this.now);
    }
    for (const { message } of ready.sequenced) node.acknowledged.push(message);
    if (ready.view) {
      node.viewLog.push(ready.view);
      this.log(`server ${node.id} view ${ready.view.join(',')}`);
    }
    for (const m of ready.stable) this.deliverStable(node, m);
  }

  private noteSent(node: SimNode, messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.sender !== node.id) continue;
      const ts = node.sentIds.get(m.seq);
      if (ts !== undefined && ts !== m.ts) throw new Error(`server ${node.id} reused seq ${m.seq} (ts ${ts} then ${m.ts})`);
      node.sentIds.set(m.seq, m.ts);
    }
  }

  private deliverStable(node: SimNode, m: Message): void {
    const index = node.stable.length;
    node.stable.push(m);
    const reference = this.globalStable[index];
    if (reference === undefined) {
      this.globalStable.push(m);
      return;
    }
    if (reference.sender !== m.sender || reference.seq !== m.seq) {
      throw new Error(
        `stable prefixes disagree at position ${index}: server ${node.id} has ${m.sender}:${m.seq}, ` +
          `another has ${reference.sender}:${reference.seq}\n${this.trace.slice(-30).join('\n')}`,
      );
    }
  }

  log(line: string): void {
    this.trace.push(`[${this.now.toFixed(1)} ms] ${line}`);
    if (this.trace.length > 2000) this.trace.splice(0, 1000);
  }

  /** All up servers hold the same messages, everything is stable and garbage-collected, nothing in flight is needed. */
  quiescent(): boolean {
    const up = this.nodes.filter((n) => n.engine);
    const first = up[0]?.engine;
    if (!first) return true;
    return up.every(
      (n) =>
        n.engine!.unstableCount === 0 &&
        n.engine!.storeCount === 0 &&
        n.engine!.queuedCount === 0 &&
        n.engine!.seqVector.every((seq, i) => seq === first.seqVector[i]),
    );
  }
}
