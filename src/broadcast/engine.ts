/**
 * The broadcast engine: a pure, deterministic state machine (SPEC section 2).
 *
 * Inputs: `receive` (a decoded datagram from a peer), `tick` (time passes),
 * `broadcast` (the application wants a payload sent). Every input carries
 * the current time in milliseconds; the engine never reads a clock.
 *
 * Outputs are collected and handed over by `ready()`, like etcd raft's Ready.
 * The caller must act on a Ready in this order:
 *
 *   1. append `records` to the journal and make them durable (fsync);
 *   2. only then send `packets` (they may acknowledge, carry or depend on
 *      those records: our own new messages, the clock, the seq vector);
 *   3. only then acknowledge `sequenced` broadcasts to their requesters;
 *   4. apply `ordered` (new, tentative) and `stable` (final) messages to the
 *      application, in that order.
 *
 * Nothing from a Ready may be sent before every earlier Ready's records are
 * durable too; the daemon keeps one journal and syncs it in order.
 */
import { invariant } from '../errors.js';
import { packData, payloadFits } from '../wire/codec.js';
import { AckMatrix } from './ackMatrix.js';
import { OrderedLog } from './orderedLog.js';
import { ReceiveWindow } from './receiveWindow.js';
import { RetransmitStore } from './retransmitStore.js';
import type { DataPacket, JournalRecord, Message, NackPacket, Outbound, Packet, ServerId, StatusPacket } from './types.js';
import { Views } from './views.js';

export interface EngineOptions {
  readonly me: ServerId;
  readonly serverCount: number;
  /** Datagrams are packed up to this many bytes; a single larger message travels alone. */
  readonly maxDatagramBytes: number;
  /** Period of status packets (heartbeat and anti-entropy) when nothing else prompts one. */
  readonly statusIntervalMs: number;
  /** After accepting data, a status (acknowledgement) goes out at most this long after the previous one. */
  readonly ackDelayMs: number;
  /** A server not heard from for this long leaves the view. */
  readonly viewTimeoutMs: number;
  /** A NACK still unanswered after this long is sent again, to the next server that holds the range. */
  readonly nackRetryMs: number;
  /** Largest range one NACK asks for; a longer gap is fetched in several rounds. */
  readonly maxNackMessages: number;
  /** Most messages retransmitted in answer to one NACK. */
  readonly maxRetransmitMessages: number;
  /**
   * Flow control: at most this many own messages not yet held by every server
   * in the view. Broadcasts past it wait in a queue; servers outside the view
   * do not count, so a partition never blocks a side.
   */
  readonly sendWindowMessages: number;
  /** Broadcasts waiting for the send window; past this, `broadcast` answers 'busy'. */
  readonly maxQueuedBroadcasts: number;
  /** Out-of-order messages buffered per sender ahead of a gap; further ones are dropped and fetched later. */
  readonly receiveWindowMessages: number;
  /**
   * TEST ONLY: a deliberately broken variant, to show that the simulator
   * catches each kind of bug. Never set outside the simulator's checks.
   */
  readonly brokenVariant?: BrokenVariant;
}

/** Deliberate bugs the simulator must catch (see test/simulator.test.ts). */
export type BrokenVariant = 'order-without-sender-tiebreak' | 'gc-without-seq-matrix' | 'no-nack';

export const defaultEngineTimers = {
  statusIntervalMs: 100,
  ackDelayMs: 1,
  viewTimeoutMs: 1500,
  nackRetryMs: 30,
} as const;

export const defaultEngineLimits = {
  maxNackMessages: 2000,
  maxRetransmitMessages: 2000,
  sendWindowMessages: 4000,
  maxQueuedBroadcasts: 20000,
  receiveWindowMessages: 10000,
} as const;

/** The protocol state saved in a snapshot; with the journal after it, enough to rebuild the engine exactly. */
export interface EngineState {
  readonly lastSeq: number;
  readonly contiguous: number[];
  readonly tsVector: number[];
  readonly seqMatrix: number[][];
  readonly tsMatrix: number[][];
  /** Highest garbage-collected seq per sender. */
  readonly collectedUpTo: number[];
  /** The stable point applied to the application: every message with ts <= stableTs is in its state. */
  readonly stableTs: number;
  /** The retransmission store: every message not yet collected, per sender in seq order. */
  readonly messages: Message[];
}

export interface Ready {
  readonly records: JournalRecord[];
  readonly packets: Outbound[];
  /** Own broadcasts that got their (seq, ts): acknowledge once `records` are durable. */
  readonly sequenced: { readonly tag: number; readonly message: Message }[];
  /** Newly accepted messages, now in the (tentative) total order. */
  readonly ordered: Message[];
  /** Newly stable messages, in total order: final, identical at every server. */
  readonly stable: Message[];
  /** The new view, when it changed. */
  readonly view?: readonly ServerId[];
}

export type BroadcastResult = 'accepted' | 'busy' | 'too-large';

export interface EngineCounters {
  accepted: number;
  duplicates: number;
  beyondWindow: number;
  /** Messages refused as impossible from a correct peer (timestamp not after the sender's previous, or behind the stable point). */
  inconsistent: number;
  ownEchoes: number;
  nacksSent: number;
  nacksReceived: number;
  retransmitted: number;
  statusesSent: number;
  dataPacketsSent: number;
  collected: number;
}

export class Engine {
  private readonly me: ServerId;
  private readonly n: number;
  private now: number;
  private lastSeq: number;
  private readonly window: ReceiveWindow;
  private readonly store: RetransmitStore;
  private readonly log: OrderedLog;
  private readonly acks: AckMatrix;
  private readonly views: Views;
  /** Stable point applied so far; only grows. */
  private appliedStableTs: number;
  /** Highest stable seq per sender: garbage collection needs both this and the seq matrix. */
  private readonly stableSeq: number[];
  private readonly queuedBroadcasts: { payload: string; tag: number }[] = [];
  private lastStatusAt = -Infinity;
  private statusDue = false;
  private readonly lastNackAt: number[];
  private readonly nackAttempts: number[];
  /** A NACK for a sender is outstanding until contiguous reaches this seq. */
  private readonly nackedUpTo: number[];
  /** The server that last handed us a message beyond a gap: it likely holds the gap too. */
  private readonly gapHint: (ServerId | undefined)[];
  private lastRecordedTs: number[];
  private lastRecordedAcks = '';
  private lastAcksRecordAt = -Infinity;
  private replaying = false;
  readonly counters: EngineCounters = {
    accepted: 0,
    duplicates: 0,
    beyondWindow: 0,
    inconsistent: 0,
    ownEchoes: 0,
    nacksSent: 0,
    nacksReceived: 0,
    retransmitted: 0,
    statusesSent: 0,
    dataPacketsSent: 0,
    collected: 0,
  };

  // Effects collected for the next ready().
  private records: JournalRecord[] = [];
  private sequenced: { tag: number; message: Message }[] = [];
  private ordered: Message[] = [];
  private stableNow: Message[] = [];
  private outgoing: Outbound[] = [];
  private newOwn: Message[] = [];
  private retransmits = new Map<ServerId, Message[]>();

  constructor(
    readonly options: EngineOptions,
    now: number,
    saved?: EngineState,
  ) {
    const n = options.serverCount;
    invariant(options.me >= 1 && options.me <= n, `server id ${options.me} outside 1-${n}`);
    this.me = options.me;
    this.n = n;
    this.log = new OrderedLog(options.brokenVariant === 'order-without-sender-tiebreak' ? (a, b) => a.ts - b.ts : undefined);
    this.now = now;
    const zeros = () => new Array<number>(n).fill(0);
    this.lastSeq = saved?.lastSeq ?? 0;
    this.window = new ReceiveWindow(saved?.contiguous ?? zeros(), options.receiveWindowMessages);
    this.store = new RetransmitStore(n, saved?.collectedUpTo ?? zeros());
    this.acks = new AckMatrix(options.me, n, saved);
    this.views = new Views(options.me, n, options.viewTimeoutMs);
    this.appliedStableTs = saved?.stableTs ?? 0;
    this.stableSeq = saved?.collectedUpTo ? [...saved.collectedUpTo] : zeros();
    this.lastNackAt = new Array<number>(n).fill(-Infinity);
    this.nackAttempts = zeros();
    this.nackedUpTo = zeros();
    this.gapHint = new Array(n).fill(undefined);
    for (const m of saved?.messages ?? []) {
      this.store.add(m);
      this.window.recall(m);
      if (m.ts <= this.appliedStableTs) {
        this.stableSeq[m.sender - 1] = m.seq;
      } else {
        this.log.insert(m);
        this.ordered.push(m);
      }
    }
    this.lastRecordedTs = [...this.acks.tsVector];
  }

  // ---- inputs -------------------------------------------------------------

  /** A datagram from a peer, already decoded and validated. */
  receive(packet: Packet, now: number): void {
    this.advanceTime(now);
    if (packet.from === this.me) return;
    this.views.heard(packet.from, now);
    switch (packet.type) {
      case 'data':
        return this.onData(packet);
      case 'status':
        return this.onStatus(packet);
      case 'nack':
        return this.onNack(packet);
    }
  }

  /** Time passes: heartbeats, view timeouts, NACK retries happen in the next ready(). */
  tick(now: number): void {
    this.advanceTime(now);
    if (now >= this.lastStatusAt + this.options.statusIntervalMs) this.statusDue = true;
  }

  /**
   * Ask for a payload to be broadcast. 'accepted': it will be sequenced (at
   * once, or when the send window opens) and reported in `sequenced` with
   * `tag`. 'busy': the queue is full, try later. 'too-large': it can never fit a datagram.
   */
  broadcast(payload: string, tag: number, now: number): BroadcastResult {
    this.advanceTime(now);
    if (!payloadFits(payload)) return 'too-large';
    if (this.queuedBroadcasts.length >= this.options.maxQueuedBroadcasts) return 'busy';
    this.queuedBroadcasts.push({ payload, tag });
    return 'accepted';
  }

  // ---- output -------------------------------------------------------------

  /** Everything the caller must do now; see the contract at the top of this file. */
  ready(): Ready {
    this.admitBroadcasts();
    this.updateStability();
    const view = this.updateView();
    this.scheduleNacks();
    this.flushData();
    this.flushStatus();
    this.recordTsVector();
    this.recordAcks();
    const result: Ready = {
      records: this.records,
      packets: this.outgoing,
      sequenced: this.sequenced,
      ordered: this.ordered,
      stable: this.stableNow,
      ...(view ? { view } : {}),
    };
    this.records = [];
    this.outgoing = [];
    this.sequenced = [];
    this.ordered = [];
    this.stableNow = [];
    return result;
  }

  /** The next time at which tick() has work to do. */
  nextDeadline(): number {
    let next = this.lastStatusAt + this.options.statusIntervalMs;
    if (this.statusDue) next = Math.min(next, this.lastStatusAt + this.options.ackDelayMs);
    next = Math.min(next, this.views.nextExpiryAt() + 1);
    for (let s = 1; s <= this.n; s++) {
      if (s !== this.me && this.hasGap(s)) next = Math.min(next, this.lastNackAt[s - 1] + this.options.nackRetryMs);
    }
    return next;
  }

  // ---- recovery -----------------------------------------------------------

  /**
   * Rebuild from a snapshot (or nothing) and the journal written after it.
   * Returns the engine, or the index of the first record that does not fit
   * (a corrupt journal) with the reason.
   */
  static recover(
    options: EngineOptions,
    now: number,
    saved: EngineState | undefined,
    records: readonly JournalRecord[],
  ): { engine: Engine } | { badRecord: number; reason: string } {
    const engine = new Engine(options, now, saved);
    engine.replaying = true;
    for (let i = 0; i < records.length; i++) {
      const reason = engine.replay(records[i]);
      if (reason) return { badRecord: i, reason };
    }
    engine.replaying = false;
    engine.lastRecordedTs = [...engine.acks.tsVector];
    engine.lastRecordedAcks = JSON.stringify([engine.acks.seqMatrix, engine.acks.tsMatrix]);
    return { engine };
  }

  private replay(record: JournalRecord): string | undefined {
    if (record.t === 'acks') {
      if (record.seqMatrix.length !== this.n || record.tsMatrix.length !== this.n) return `ack matrices are not ${this.n} x ${this.n}`;
      this.acks.mergeMatrices(record.seqMatrix, record.tsMatrix);
      // The own row of the ts matrix is the timestamp vector when it was recorded.
      record.tsMatrix[this.me - 1].forEach((ts, i) => {
        if (ts > this.acks.tsVector[i]) this.acks.tsVector[i] = ts;
      });
      return undefined;
    }
    if (record.t === 'ts') {
      if (record.tsVector.length !== this.n) return `timestamp vector has ${record.tsVector.length} entries, expected ${this.n}`;
      record.tsVector.forEach((ts, i) => {
        if (ts > this.acks.tsVector[i]) this.acks.tsVector[i] = ts;
      });
      return undefined;
    }
    const m = record.m;
    if (m.sender < 1 || m.sender > this.n) return `message from unknown server ${m.sender}`;
    const next = this.window.contiguous[m.sender - 1] + 1;
    if (m.seq !== next) return `message ${m.sender}:${m.seq} out of sequence (expected seq ${next})`;
    if (m.ts <= this.appliedStableTs) return `message ${m.sender}:${m.seq} has ts ${m.ts} at or before the stable point ${this.appliedStableTs}`;
    if (this.window.offer(m, this.appliedStableTs) === 'inconsistent') return `message ${m.sender}:${m.seq} has ts ${m.ts}, not after the sender's previous message`;
    if (m.sender === this.me) {
      this.lastSeq = m.seq;
      if (m.ts > this.acks.clock) this.acks.clock = m.ts;
    }
    this.accept(m);
    return undefined;
  }

  // ---- state for snapshots, tools and tests --------------------------------

  exportState(): EngineState {
    return {
      lastSeq: this.lastSeq,
      contiguous: [...this.window.contiguous],
      tsVector: [...this.acks.tsVector],
      seqMatrix: this.acks.seqMatrix.map((row) => [...row]),
      tsMatrix: this.acks.tsMatrix.map((row) => [...row]),
      collectedUpTo: this.store.collectedUpTo(),
      stableTs: this.appliedStableTs,
      messages: this.store.all(),
    };
  }

  get view(): readonly ServerId[] {
    return this.views.view;
  }

  get clock(): number {
    return this.acks.clock;
  }

  get stableTs(): number {
    return this.appliedStableTs;
  }

  /** Every message with ts <= this is known to be stable at every server. */
  get stableEverywhereTs(): number {
    return this.acks.stableEverywhereTs();
  }

  get seqVector(): readonly number[] {
    return this.window.contiguous;
  }

  get tsVector(): readonly number[] {
    return this.acks.tsVector;
  }

  get seqMatrix(): readonly (readonly number[])[] {
    return this.acks.seqMatrix;
  }

  get tsMatrix(): readonly (readonly number[])[] {
    return this.acks.tsMatrix;
  }

  /** Messages accepted but not yet stable, in total order. */
  tentative(): Message[] {
    return this.log.toArray();
  }

  get unstableCount(): number {
    return this.log.size;
  }

  get storeCount(): number {
    return this.store.size;
  }

  get queuedCount(): number {
    return this.queuedBroadcasts.length;
  }

  get bufferedCount(): number {
    return this.window.bufferedCount();
  }

  // ---- packet handling ------------------------------------------------------

  private onData(packet: DataPacket): void {
    for (const m of packet.messages) {
      if (m.sender === this.me) {
        this.counters.ownEchoes++;
        continue;
      }
      const offered = this.window.offer(m, this.appliedStableTs);
      if (offered === 'duplicate') this.counters.duplicates++;
      else if (offered === 'beyond-window') this.counters.beyondWindow++;
      else if (offered === 'inconsistent') this.counters.inconsistent++;
      else if (offered === 'buffered') this.gapHint[m.sender - 1] = packet.from;
      else for (const ready of offered) this.accept(ready);
    }
  }

  private onStatus(packet: StatusPacket): void {
    this.acks.onStatus(packet, this.window.contiguous);
  }

  private onNack(packet: NackPacket): void {
    this.counters.nacksReceived++;
    const messages = this.store.range(packet.sender, packet.fromSeq, packet.toSeq, this.options.maxRetransmitMessages);
    if (messages.length === 0) return;
    this.counters.retransmitted += messages.length;
    const queue = this.retransmits.get(packet.from);
    if (queue) queue.push(...messages);
    else this.retransmits.set(packet.from, messages);
  }

  // ---- acceptance and stability -----------------------------------------------

  /** A message is accepted in sender order: it joins the store, the total order and the journal. */
  private accept(m: Message): void {
    invariant(m.ts > this.appliedStableTs, `message ${m.sender}:${m.seq} (ts ${m.ts}) arrived behind the stable point ${this.appliedStableTs}`);
    if (m.sender !== this.me) this.acks.clock = Math.max(this.acks.clock, m.ts) + 1;
    this.acks.raiseBound(m.sender, m.ts);
    this.store.add(m);
    this.log.insert(m);
    this.ordered.push(m);
    this.counters.accepted++;
    if (this.replaying) return;
    this.records.push({ t: 'msg', m });
    this.statusDue = true;
  }

  private admitBroadcasts(): void {
    while (this.queuedBroadcasts.length > 0 && this.windowOpen()) {
      const { payload, tag } = this.queuedBroadcasts.shift()!;
      this.acks.clock += 1;
      this.lastSeq += 1;
      const m: Message = { sender: this.me, seq: this.lastSeq, ts: this.acks.clock, payload };
      const offered = this.window.offer(m, this.appliedStableTs);
      invariant(Array.isArray(offered) && offered.length === 1, `own message ${m.seq} not next in sequence`);
      this.accept(m);
      this.sequenced.push({ tag, message: m });
      this.newOwn.push(m);
    }
  }

  private windowOpen(): boolean {
    let leastHeld = this.lastSeq;
    for (const k of this.views.view) {
      if (k !== this.me) leastHeld = Math.min(leastHeld, this.acks.seqMatrix[k - 1][this.me - 1]);
    }
    return this.lastSeq - leastHeld < this.options.sendWindowMessages;
  }

  private updateStability(): void {
    this.acks.refreshBounds(this.window.contiguous);
    this.acks.syncOwnRows(this.window.contiguous);
    const stableTs = this.acks.stableTs();
    if (stableTs > this.appliedStableTs) {
      this.appliedStableTs = stableTs;
      for (const m of this.log.takeStable(stableTs)) {
        this.stableSeq[m.sender - 1] = m.seq;
        this.stableNow.push(m);
      }
    }
    this.collectGarbage();
  }

  /** A message leaves the store once it is stable and every server holds it durably. */
  private collectGarbage(): void {
    const ignoreAcks = this.options.brokenVariant === 'gc-without-seq-matrix';
    for (let s = 1; s <= this.n; s++) {
      const upTo = ignoreAcks ? this.stableSeq[s - 1] : Math.min(this.stableSeq[s - 1], this.acks.heldByAll(s));
      this.counters.collected += this.store.collectUpTo(s, upTo);
    }
  }

  private updateView(): readonly ServerId[] | undefined {
    const changed = this.views.update(this.now);
    if (changed) this.statusDue = true;
    return changed;
  }

  // ---- NACKs -----------------------------------------------------------------

  private hasGap(sender: ServerId): boolean {
    return this.window.gap(sender, this.acks.highestKnown(sender)) !== undefined;
  }

  /** For each sender with a known gap, ask one server that holds the range, rotating on retries. */
  private scheduleNacks(): void {
    for (let s = 1; s <= this.n; s++) {
      if (s === this.me) continue;
      const i = s - 1;
      const gap = this.window.gap(s, this.acks.highestKnown(s));
      if (!gap) continue;
      const answered = this.window.contiguous[i] >= this.nackedUpTo[i];
      if (!answered && this.now < this.lastNackAt[i] + this.options.nackRetryMs) continue;
      const target = this.nackTarget(s, gap.fromSeq);
      this.lastNackAt[i] = this.now;
      if (target === undefined) continue;
      const toSeq = Math.min(gap.toSeq, gap.fromSeq + this.options.maxNackMessages - 1);
      if (this.options.brokenVariant === 'no-nack') continue;
      this.outgoing.push({ to: target, packet: { type: 'nack', from: this.me, sender: s, fromSeq: gap.fromSeq, toSeq } });
      this.nackedUpTo[i] = toSeq;
      this.nackAttempts[i]++;
      this.counters.nacksSent++;
    }
  }

  private nackTarget(sender: ServerId, fromSeq: number): ServerId | undefined {
    const hint = this.gapHint[sender - 1];
    const holders = this.views.view.filter(
      (k) => k !== this.me && (k === sender || k === hint || this.acks.seqMatrix[k - 1][sender - 1] >= fromSeq),
    );
    if (holders.length === 0) return undefined;
    return holders[this.nackAttempts[sender - 1] % holders.length];
  }

  // ---- outgoing packets --------------------------------------------------------

  private flushData(): void {
    if (this.newOwn.length > 0) {
      const packets = packData(this.me, this.newOwn, this.options.maxDatagramBytes);
      for (const to of this.views.view) {
        if (to === this.me) continue;
        for (const packet of packets) this.outgoing.push({ to, packet });
      }
      this.counters.dataPacketsSent += packets.length * (this.views.view.length - 1);
      this.newOwn = [];
    }
    for (const [to, messages] of this.retransmits) {
      for (const packet of packData(this.me, messages, this.options.maxDatagramBytes)) {
        this.outgoing.push({ to, packet });
        this.counters.dataPacketsSent++;
      }
    }
    this.retransmits.clear();
  }

  private flushStatus(): void {
    if (!this.statusDue || this.now < this.lastStatusAt + this.options.ackDelayMs) return;
    const status: StatusPacket = {
      type: 'status',
      from: this.me,
      seqVector: [...this.window.contiguous],
      tsVector: [...this.acks.tsVector],
    };
    for (let to = 1; to <= this.n; to++) if (to !== this.me) this.outgoing.push({ to, packet: status });
    this.statusDue = false;
    this.lastStatusAt = this.now;
    this.counters.statusesSent++;
  }

  /** Persist the timestamp vector (clock and bounds) whenever it changed: packets below may carry it. */
  /**
   * Persist the timestamp vector when the own clock moved: packets below
   * may carry the clock, and it must never go back after a crash. The
   * bounds for other servers ride along but need no durability of their
   * own (what they say stays true; a restart merely relearns them), so a
   * step that only took in statuses writes nothing and costs no fsync.
   */
  private recordTsVector(): void {
    const ts = this.acks.tsVector;
    if (ts[this.me - 1] === this.lastRecordedTs[this.me - 1]) return;
    this.lastRecordedTs = [...ts];
    this.records.push({ t: 'ts', tsVector: [...ts] });
  }

  /**
   * Persist the ack matrices (whose own row is the timestamp vector) now and
   * then, so that a restart and the inspector see the stable point and what
   * every server holds nearly as they were, garbage collection included.
   */
  private recordAcks(): void {
    if (this.now < this.lastAcksRecordAt + this.options.statusIntervalMs) return;
    const acks = JSON.stringify([this.acks.seqMatrix, this.acks.tsMatrix]);
    if (acks === this.lastRecordedAcks) return;
    this.lastRecordedAcks = acks;
    this.lastAcksRecordAt = this.now;
    this.records.push({ t: 'acks', seqMatrix: this.acks.seqMatrix.map((r) => [...r]), tsMatrix: this.acks.tsMatrix.map((r) => [...r]) });
  }

  private advanceTime(now: number): void {
    if (now > this.now) this.now = now;
  }
}
