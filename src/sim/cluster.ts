/**
 * Several real engines, each with the real chat state machine, on the
 * in-memory network, in one process, on a simulated clock.
 *
 * Storage is simulated too: the records of a Ready become durable only
 * after `fsyncDelayMs`, and a Ready's packets and acknowledgements wait for
 * that, as in the daemon. A crash loses what was not yet durable, except a
 * random prefix that had reached the disk anyway (its last line possibly
 * torn, which recovery drops). Snapshots replace the journal from time to time.
 *
 * The cluster checks, as it goes, that no two servers' stable prefixes ever
 * disagree and that no server reuses a sequence number or a timestamp, even
 * across restarts; a violation throws with a trace of recent events.
 */
import { Engine, type EngineState, type Ready } from '../broadcast/engine.js';
import { engineOptions, type EngineOptions } from '../broadcast/options.js';
import type { JournalRecord, Message, Outbound, ServerId } from '../broadcast/types.js';
import { encodeOp } from '../chat/operations.js';
import { ChatApp } from '../daemon/chatApp.js';
import { decodePacket, encodeDatagrams, networkDatagramBytes } from '../wire/codec.js';
import { SimNetwork, type NetworkFaults, noFaults } from './network.js';
import { Random } from './random.js';

export class SimulationFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimulationFailure';
  }
}

/** One Ready, waiting for its records to become durable; then, as in the daemon, it is sent, acknowledged and applied. */
interface Batch {
  readonly ready: Ready;
  /** Already sent (the send-before-durable broken variant). */
  readonly sent: boolean;
  readonly completesAt: number;
}

interface SimSnapshot {
  readonly engine: EngineState;
  readonly app: unknown;
  /** How many stable messages the snapshot's chat state holds (checker bookkeeping). */
  readonly stableCount: number;
}

/** A message a client was told is durable. */
export interface Acknowledged {
  readonly sender: ServerId;
  readonly seq: number;
  readonly ts: number;
  readonly payload: string;
}

export class SimNode {
  engine: Engine | undefined;
  app: ChatApp | undefined;
  /** Durable journal records since the snapshot. */
  journal: JournalRecord[] = [];
  snapshot: SimSnapshot | undefined;
  pending: Batch[] = [];
  /** The stable prefix of the total order as this node delivered it (checker data: survives crashes). */
  stable: Message[] = [];
  /** Own messages that left in a packet: seq -> ts and payload. */
  readonly sent = new Map<number, { ts: number; payload: string }>();
  readonly sentTs = new Set<number>();
  /** The highest clock this node ever advertised in a status. */
  advertisedClock = 0;
  readonly acknowledged: Acknowledged[] = [];
  /** Broadcast tags whose acknowledgement a client is waiting for. */
  readonly waiting = new Map<number, (m: Message) => void>();
  crashes = 0;

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
  /** Time for a batch of journal records to become durable (0: at once). */
  fsyncDelayMs?: number;
  /** TEST ONLY broken variant: send a Ready's packets before its records are durable. */
  sendBeforeDurable?: boolean;
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
    this.options = (me) => engineOptions(me, config.serverCount, config.engine);
    this.nodes = Array.from({ length: config.serverCount }, (_, i) => {
      const node = new SimNode(i + 1);
      node.engine = new Engine(this.options(i + 1), 0);
      node.app = new ChatApp(undefined);
      return node;
    });
  }

  node(id: ServerId): SimNode {
    return this.nodes[id - 1];
  }

  /** Broadcast a payload from a server; `onAck` runs once it is durable there. False if down or refused. */
  broadcast(id: ServerId, payload: string, onAck?: (m: Message) => void): boolean {
    const node = this.node(id);
    if (!node.engine) return false;
    const tag = this.nextTag++;
    if (node.engine.broadcast(payload, tag, this.now) !== 'accepted') return false;
    if (onAck) node.waiting.set(tag, onAck);
    this.flush(node);
    return true;
  }

  /** Crash: everything not durable is lost, but a random prefix of it that reached the disk. */
  crash(id: ServerId): void {
    const node = this.node(id);
    if (!node.engine) return;
    const unsynced = node.pending.flatMap((b) => b.ready.records);
    const survive = unsynced.length === 0 ? 0 : this.random.int(0, unsynced.length);
    node.journal.push(...unsynced.slice(0, survive));
    node.pending = [];
    node.engine = undefined;
    node.app = undefined;
    node.waiting.clear();
    node.crashes++;
    this.log(`crash ${id}: ${unsynced.length - survive} of ${unsynced.length} unsynced records lost`);
  }

  restart(id: ServerId): void {
    const node = this.node(id);
    if (node.engine) return;
    const recovered = Engine.recover(this.options(id), this.now, node.snapshot?.engine, node.journal);
    if (!('engine' in recovered)) throw this.failure(`server ${id} cannot recover: record ${recovered.badRecord}: ${recovered.reason}`);
    node.engine = recovered.engine;
    node.app = new ChatApp(node.snapshot?.app);
    node.stable = node.stable.slice(0, node.snapshot?.stableCount ?? 0);
    this.log(`restart ${id} from ${node.snapshot ? 'a snapshot and ' : ''}${node.journal.length} journal records`);
    this.flush(node);
    // The sessions this server had are gone: their users leave (as ChatServer does).
    for (const group of Object.values(node.app.replica.shown.groups)) {
      for (const [session, member] of Object.entries(group.members)) {
        if (member.server === id) this.broadcast(id, encodeOp({ op: 'leave', session }));
      }
    }
  }

  /** Replace the journal by a snapshot, as LogFiles.writeSnapshot does (only with nothing pending). */
  snapshot(id: ServerId): boolean {
    const node = this.node(id);
    if (!node.engine || !node.app || node.pending.length > 0) return false;
    node.snapshot = { engine: node.engine.exportState(), app: node.app.snapshot(), stableCount: node.stable.length };
    node.journal = [];
    return true;
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
        throw this.failure(`not reached within ${maxMs} ms of simulated time: ${what}`);
      }
    }
  }

  /** Process the next event due at or before `limit`. Returns false if there is none. */
  step(limit: number): boolean {
    const nextPacket = this.network.nextDeliveryAt();
    let next = nextPacket;
    let action: (() => void) | undefined;
    for (const node of this.nodes) {
      const engine = node.engine;
      if (!engine) continue;
      const syncAt = node.pending[0]?.completesAt ?? Infinity;
      if (syncAt < next) {
        next = syncAt;
        action = () => this.completeBatch(node);
      }
      const timerAt = engine.nextDeadline();
      if (timerAt < next) {
        next = timerAt;
        action = () => {
          engine.tick(this.now);
          this.flush(node);
        };
      }
    }
    const at = Math.max(this.now, next);
    if (at > limit || at === Infinity) return false;
    this.stepsAtSameTime = at === this.now ? this.stepsAtSameTime + 1 : 0;
    if (this.stepsAtSameTime > 100_000) throw this.failure(`livelock: time stuck at ${at} ms`);
    this.now = at;
    if (action) action();
    else for (const d of this.network.due(at)) this.deliver(d.from, d.to, d.bytes);
    return true;
  }

  private deliver(from: ServerId, to: ServerId, bytes: Uint8Array): void {
    const node = this.node(to);
    if (!node.engine) return;
    const decoded = decodePacket(bytes, this.config.serverCount);
    if (!decoded.ok) throw this.failure(`codec rejected a datagram from ${from}: ${decoded.reason} ${decoded.detail}`);
    node.engine.receive(decoded.packet, this.now);
    this.flush(node);
  }

  /** Take the engine's Ready and queue it until its records are durable. */
  private flush(node: SimNode): void {
    const engine = node.engine;
    if (!engine) return;
    const ready = engine.ready();
    for (const { message } of ready.sequenced) {
      if (message.ts <= node.advertisedClock) {
        throw this.failure(`server ${node.id} created seq ${message.seq} with ts ${message.ts}, but its clock ${node.advertisedClock} had already left in a status`);
      }
    }
    const empty = ready.records.length + ready.packets.length + ready.sequenced.length + ready.stable.length === 0 && !ready.ordered;
    if (empty && !ready.view) return;
    const delay = this.config.fsyncDelayMs ?? 0;
    const last = node.pending[node.pending.length - 1];
    const completesAt = Math.max(this.now, last?.completesAt ?? 0) + delay;
    const sendNow = this.config.sendBeforeDurable === true;
    if (sendNow) this.send(node, ready.packets);
    node.pending.push({ ready, sent: sendNow, completesAt });
    if (delay === 0) while (node.pending.length > 0) this.completeBatch(node);
  }

  /** The Ready contract: durable, then sent, then acknowledged and applied. */
  private completeBatch(node: SimNode): void {
    const batch = node.pending.shift();
    if (!batch || !node.app) return;
    const { ready } = batch;
    node.journal.push(...ready.records);
    if (!batch.sent) this.send(node, ready.packets);
    for (const { tag, message } of ready.sequenced) {
      node.acknowledged.push({ sender: message.sender, seq: message.seq, ts: message.ts, payload: message.payload });
      node.waiting.get(tag)?.(message);
      node.waiting.delete(tag);
    }
    if (ready.view) this.log(`server ${node.id} view {${ready.view.join(',')}}`);
    for (const m of ready.stable) this.deliverStable(node, m);
    node.app.apply(ready.ordered, ready.stable);
  }

  private send(node: SimNode, packets: readonly Outbound[]): void {
    for (const { to, packet } of packets) {
      if (packet.type === 'data') this.checkOwnMessages(node, packet.messages);
      if (packet.type === 'status') node.advertisedClock = Math.max(node.advertisedClock, packet.tsVector[node.id - 1]);
      for (const datagram of encodeDatagrams(packet, networkDatagramBytes)) this.network.send(node.id, to, datagram, this.now);
    }
  }

  /** Among the messages that ever left a server, a seq never stands for two messages, nor a timestamp for two seqs. */
  private checkOwnMessages(node: SimNode, messages: readonly Message[]): void {
    for (const m of messages) {
      if (m.sender !== node.id) continue;
      const earlier = node.sent.get(m.seq);
      if (earlier) {
        if (earlier.ts !== m.ts || earlier.payload !== m.payload) {
          throw this.failure(`server ${node.id} reused seq ${m.seq}: first ts ${earlier.ts}, now ts ${m.ts}`);
        }
        continue;
      }
      if (node.sentTs.has(m.ts)) throw this.failure(`server ${node.id} reused timestamp ${m.ts} (seq ${m.seq})`);
      node.sent.set(m.seq, { ts: m.ts, payload: m.payload });
      node.sentTs.add(m.ts);
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
    if (reference.sender !== m.sender || reference.seq !== m.seq || reference.payload !== m.payload) {
      throw this.failure(`stable prefixes disagree at position ${index}: server ${node.id} has ${m.sender}:${m.seq}, another has ${reference.sender}:${reference.seq}`);
    }
  }

  log(line: string): void {
    this.trace.push(`[${this.now.toFixed(1)} ms] ${line}`);
    if (this.trace.length > 4000) this.trace.splice(0, 2000);
  }

  failure(message: string): SimulationFailure {
    return new SimulationFailure(`${message}\nlast events:\n${this.trace.slice(-40).join('\n')}`);
  }

  /** All up servers hold the same messages, all stable and collected, nothing waiting to be made durable. */
  quiescent(): boolean {
    const up = this.nodes.filter((n) => n.engine);
    const first = up[0]?.engine;
    if (!first) return true;
    return up.every(
      (n) =>
        n.pending.length === 0 &&
        n.engine!.unstableCount === 0 &&
        n.engine!.storeCount === 0 &&
        n.engine!.queuedCount === 0 &&
        n.engine!.seqVector.every((seq, i) => seq === first.seqVector[i]),
    );
  }
}
