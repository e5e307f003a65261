/**
 * The broadcast engine: a pure, deterministic state machine (docs/spec.md section 2),
 * composed of one module per concern: the Lamport clock, the per-sender
 * receive window, the retransmission store, the tentative order, the ack
 * matrices and stable point, views, NACK scheduling, flow control and the
 * durability records. Recovery (recovery.ts) rebuilds its state from the log.
 *
 * Inputs: `receive` (a decoded packet from a peer), `tick` (time passes),
 * `broadcast` (the application wants a payload sent). Every input carries
 * the current time in milliseconds; the engine never reads a clock.
 *
 * Outputs are collected and handed over by `ready()`, like etcd raft's Ready.
 * The caller (src/node/node.ts) must act on a Ready in this order:
 *
 *   1. append `records` to the journal and make them durable (fsync);
 *   2. only then send `packets` (they may acknowledge, carry or depend on
 *      those records: our own new messages, the clock, the seq vector);
 *   3. only then confirm `sequenced` broadcasts to their requesters;
 *   4. apply `ordered` (the tentative order's change) and then `stable`
 *      (final) messages to the application, in that order.
 *
 * Nothing from a Ready may be acted on before every earlier Ready's records
 * are durable too; Readys complete in the order they were taken.
 */
import { invariant, InvariantError } from '../errors.js';
import type { AckMatrix } from './ackMatrix.js';
import { DurabilityRecorder } from './durability.js';
import { FlowControl } from './flowControl.js';
import { LamportClock } from './lamportClock.js';
import type { NackScheduler } from './nackScheduler.js';
import { isUnicode, payloadFits, type EngineOptions } from './options.js';
import { protocolParts } from './parts.js';
import { TentativeOrder, type OrderChange } from './tentativeOrder.js';
import { ReceiveWindow } from './receiveWindow.js';
import { replayJournal, type EngineState } from './recovery.js';
import { RetransmitStore } from './retransmitStore.js';
import type { DataPacket, JournalRecord, Message, NackPacket, Outbound, Packet, ServerId, StatusPacket, StatusVectors } from './types.js';
import { Views } from './views.js';

export interface Sequenced {
  readonly tag: number;
  readonly message: Message;
}

export interface Ready {
  readonly records: JournalRecord[];
  /** Packets per destination; a data packet may hold any number of messages (the wire layer splits it into datagrams). */
  readonly packets: Outbound[];
  /** Own broadcasts that got their (seq, ts): confirm once `records` are durable. */
  readonly sequenced: Sequenced[];
  /** How the tentative total order changed (new messages, late ones in their place). */
  readonly ordered?: OrderChange;
  /** Newly stable messages, in total order, a prefix of the tentative order: final, identical at every server. */
  readonly stable: Message[];
  /** The stable point after this step: every message at or below it is in `stable` of this Ready or an earlier one. */
  readonly stableTs: number;
  /** The new view, when it changed. */
  readonly view?: readonly ServerId[];
}

export type BroadcastResult = 'accepted' | 'busy' | 'too-large' | 'not-unicode';

export interface EngineCounters {
  accepted: number;
  duplicates: number;
  beyondWindow: number;
  /** Messages refused as impossible from a correct peer (timestamp not after the sender's previous, or behind the stable point). */
  inconsistent: number;
  ownEchoes: number;
  nacksSent: number;
  /** NACKs sent again (to the next holder) because the answer to the previous one stalled. */
  nacksResent: number;
  nacksReceived: number;
  retransmitted: number;
  statusesSent: number;
  collected: number;
}

export class Engine {
  private readonly me: ServerId;
  private readonly n: number;
  private now: number;
  private lastSeq: number;
  private readonly lamportClock: LamportClock;
  private readonly window: ReceiveWindow;
  private readonly store: RetransmitStore;
  private readonly log: TentativeOrder;
  private readonly acks: AckMatrix;
  private readonly views: Views;
  private readonly nacks: NackScheduler;
  private readonly flow: FlowControl<{ payload: string; tag: number; after: number }>;
  private readonly durability: DurabilityRecorder;
  /** Stable point applied so far; only grows. */
  private appliedStableTs: number;
  /** Highest stable seq per sender: garbage collection needs both this and the seq matrix. */
  private readonly stableSeq: number[];
  private lastStatusAt = -Infinity;
  private statusDue = false;
  readonly counters: EngineCounters = {
    accepted: 0,
    duplicates: 0,
    beyondWindow: 0,
    inconsistent: 0,
    ownEchoes: 0,
    nacksSent: 0,
    nacksResent: 0,
    nacksReceived: 0,
    retransmitted: 0,
    statusesSent: 0,
    collected: 0,
  };

  // Effects collected for the next ready().
  private records: JournalRecord[] = [];
  private sequenced: Sequenced[] = [];
  private outgoing: Outbound[] = [];
  private newOwn: Message[] = [];
  private retransmits = new Map<ServerId, Message[]>();

  /** A fresh engine, or one holding exactly `saved` (recover() replays a journal on top first). */
  constructor(
    readonly options: EngineOptions,
    now: number,
    saved?: EngineState,
  ) {
    const n = options.serverCount;
    invariant(options.me >= 1 && options.me <= n, `server id ${options.me} outside 1-${n}`);
    this.me = options.me;
    this.n = n;
    this.now = now;
    const zeros = () => new Array<number>(n).fill(0);
    const parts = { ...protocolParts, ...options.parts };
    this.log = new TentativeOrder(parts.compare);
    this.lastSeq = saved?.lastSeq ?? 0;
    this.lamportClock = new LamportClock(saved?.tsVector[options.me - 1] ?? 0);
    this.window = new ReceiveWindow(saved?.contiguous ?? zeros(), options.receiveWindowMessages);
    this.store = new RetransmitStore(n, saved?.collectedUpTo ?? zeros());
    this.acks = parts.ackMatrix(options.me, n, saved);
    this.views = new Views(options.me, n, options.viewTimeoutMs);
    this.nacks = parts.nackScheduler(options.me, n, options.nackRetryMs, options.maxNackMessages);
    this.flow = new FlowControl(options.sendWindowMessages, options.maxQueuedBroadcasts);
    this.durability = new DurabilityRecorder(options.statusIntervalMs, this.lamportClock.value, this.acks.seqMatrix, this.acks.tsMatrix);
    this.appliedStableTs = saved?.stableTs ?? 0;
    this.stableSeq = saved ? [...saved.collectedUpTo] : zeros();
    for (const m of saved?.messages ?? []) {
      this.store.add(m);
      this.window.recall(m);
      if (m.ts <= this.appliedStableTs) this.stableSeq[m.sender - 1] = m.seq;
      else this.log.insert(m);
    }
  }

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
    const replayed = replayJournal(options.me, options.serverCount, saved, records);
    if ('badRecord' in replayed) return replayed;
    return { engine: new Engine(options, now, replayed.state) };
  }

  // ---- inputs -------------------------------------------------------------

  /** A packet from a peer, already decoded and validated. */
  receive(packet: Packet, now: number): void {
    this.advanceTime(now);
    if (packet.from === this.me) return;
    this.views.heard(packet.from, now);
    switch (packet.type) {
      case 'data':
        this.onData(packet);
        // After the messages it carries, as a status sent after them would be taken in.
        if (packet.status) this.acks.onStatus({ type: 'status', from: packet.from, ...packet.status }, this.window.contiguous);
        return;
      case 'status':
        return this.acks.onStatus(packet, this.window.contiguous);
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
   * `tag`. 'busy': the queue is full, try later. 'too-large': it can never fit.
   * 'not-unicode': it holds a lone surrogate, which UTF-8 cannot carry.
   * Its timestamp will be above `after` (a client's causal token: the
   * highest timestamp it has seen), so it is ordered after all of that.
   */
  broadcast(payload: string, tag: number, now: number, after = 0): BroadcastResult {
    this.advanceTime(now);
    if (!payloadFits(payload)) return 'too-large';
    if (!isUnicode(payload)) return 'not-unicode';
    return this.flow.offer({ payload, tag, after }) ? 'accepted' : 'busy';
  }

  // ---- output -------------------------------------------------------------

  /** Everything the caller must do now; see the contract at the top of this file. */
  ready(): Ready {
    this.admitBroadcasts();
    const ordered = this.log.takeChange();
    const stable = this.updateStability();
    const view = this.updateView();
    this.scheduleNacks();
    const status: StatusVectors = { seqVector: [...this.window.contiguous], tsVector: this.tsVector };
    this.flushStatus(status, this.flushData(status));
    this.records.push(...this.durability.records(this.now, this.lamportClock.value, () => this.tsVector, this.acks.seqMatrix, this.acks.tsMatrix));
    const result: Ready = {
      records: this.records,
      packets: this.outgoing,
      sequenced: this.sequenced,
      ...(ordered ? { ordered } : {}),
      stable,
      stableTs: this.appliedStableTs,
      ...(view ? { view } : {}),
    };
    this.records = [];
    this.outgoing = [];
    this.sequenced = [];
    return result;
  }

  /** The next time at which tick() has work to do. */
  nextDeadline(): number {
    let next = this.lastStatusAt + this.options.statusIntervalMs;
    if (this.statusDue) next = Math.min(next, this.lastStatusAt + this.options.ackDelayMs);
    next = Math.min(next, this.views.nextExpiryAt() + 1);
    for (let s = 1; s <= this.n; s++) {
      if (s !== this.me && this.gapOf(s)) next = Math.min(next, this.nacks.retryAt(s));
    }
    return next;
  }

  // ---- state for snapshots, tools and tests --------------------------------

  exportState(): EngineState {
    return {
      lastSeq: this.lastSeq,
      contiguous: [...this.window.contiguous],
      tsVector: this.tsVector,
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

  /** The Lamport clock. */
  get clock(): number {
    return this.lamportClock.value;
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

  /** The bounds on every server's missing messages; the own entry is the clock. */
  get tsVector(): number[] {
    return this.acks.tsVector(this.lamportClock.value);
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
    return this.flow.queued;
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
      else if (offered === 'buffered') this.nacks.hint(m.sender, packet.from);
      else for (const next of offered) this.accept(next);
    }
  }

  private onNack(packet: NackPacket): void {
    this.counters.nacksReceived++;
    const messages = this.store.range(packet.sender, packet.fromSeq, packet.toSeq, this.options.maxRetransmitMessages);
    if (messages.length === 0) return;
    this.counters.retransmitted += messages.length;
    const queued = this.retransmits.get(packet.from);
    this.retransmits.set(packet.from, queued ? queued.concat(messages) : messages);
  }

  // ---- acceptance and stability -----------------------------------------------

  /** A message is accepted in sender order: it joins the store, the total order and the journal. */
  private accept(m: Message): void {
    // Per message: the text is built only if it fails.
    if (m.ts <= this.appliedStableTs) throw new InvariantError(`message ${m.sender}:${m.seq} (ts ${m.ts}) arrived behind the stable point ${this.appliedStableTs}`);
    if (m.sender !== this.me) this.lamportClock.witness(m.ts);
    this.acks.raiseBound(m.sender, m.ts);
    this.store.add(m);
    this.log.insert(m);
    this.counters.accepted++;
    this.records.push({ t: 'msg', m });
    this.statusDue = true;
  }

  private admitBroadcasts(): void {
    let leastHeld = this.lastSeq;
    for (const k of this.views.view) {
      if (k !== this.me) leastHeld = Math.min(leastHeld, this.acks.seqMatrix[k - 1][this.me - 1]);
    }
    for (const { payload, tag, after } of this.flow.admit(this.lastSeq - leastHeld)) {
      const m: Message = { sender: this.me, seq: ++this.lastSeq, ts: this.lamportClock.next(after), payload };
      const offered = this.window.offer(m, this.appliedStableTs);
      invariant(Array.isArray(offered) && offered.length === 1, `own message ${m.seq} not next in sequence`);
      this.accept(m);
      this.sequenced.push({ tag, message: m });
      this.newOwn.push(m);
    }
  }

  /** Advance the stable point; returns the messages that became stable, in order. */
  private updateStability(): Message[] {
    const contiguous = this.window.contiguous;
    this.acks.refreshBounds(contiguous);
    this.acks.syncOwnRows(contiguous, this.lamportClock.value);
    const stableTs = this.acks.stableTs(this.lamportClock.value);
    let stable: Message[] = [];
    if (stableTs > this.appliedStableTs) {
      this.appliedStableTs = stableTs;
      stable = this.log.takeStable(stableTs);
      for (const m of stable) this.stableSeq[m.sender - 1] = m.seq;
    }
    this.collectGarbage();
    return stable;
  }

  /** A message leaves the store once it is stable and every server holds it durably. */
  private collectGarbage(): void {
    for (let s = 1; s <= this.n; s++) {
      const upTo = Math.min(this.stableSeq[s - 1], this.acks.heldByAll(s));
      this.counters.collected += this.store.collectUpTo(s, upTo);
    }
  }

  private updateView(): readonly ServerId[] | undefined {
    const changed = this.views.update(this.now);
    if (changed) this.statusDue = true;
    return changed;
  }

  // ---- NACKs -----------------------------------------------------------------

  private gapOf(sender: ServerId): { fromSeq: number; toSeq: number } | undefined {
    return this.window.gap(sender, this.acks.highestKnown(sender));
  }

  /** For each sender with a known gap, ask one server that holds the range, rotating on retries. */
  private scheduleNacks(): void {
    for (let s = 1; s <= this.n; s++) {
      if (s === this.me) continue;
      const gap = this.gapOf(s);
      if (!gap) {
        this.nacks.closed(s);
        continue;
      }
      const holders = (hint: ServerId | undefined) =>
        this.views.view.filter((k) => k !== this.me && (k === s || k === hint || this.acks.seqMatrix[k - 1][s - 1] >= gap.fromSeq));
      const nack = this.nacks.plan(this.now, s, gap, this.window.contiguous[s - 1], this.window.hasBuffered(s), holders);
      if (!nack) continue;
      this.outgoing.push({ to: nack.to, packet: nack.packet });
      this.counters.nacksSent++;
      if (nack.resent) this.counters.nacksResent++;
    }
  }

  // ---- outgoing packets --------------------------------------------------------

  /** Data packets carry the status as of this step; the servers they go to are returned (they need no separate status). */
  private flushData(status: StatusVectors): Set<ServerId> {
    const carried = new Set<ServerId>();
    if (this.newOwn.length > 0) {
      const packet: DataPacket = { type: 'data', from: this.me, messages: this.newOwn, status };
      for (const to of this.views.view) {
        if (to === this.me) continue;
        this.outgoing.push({ to, packet });
        carried.add(to);
      }
      this.newOwn = [];
    }
    for (const [to, messages] of this.retransmits) {
      this.outgoing.push({ to, packet: { type: 'data', from: this.me, messages, status } });
      carried.add(to);
    }
    this.retransmits.clear();
    return carried;
  }

  /** A status to every other server, except those that data carried it to; at most one per ack delay. */
  private flushStatus(status: StatusVectors, carried: Set<ServerId>): void {
    if (!this.statusDue) return;
    const everyoneCarried = carried.size === this.n - 1;
    if (!everyoneCarried && this.now < this.lastStatusAt + this.options.ackDelayMs) return;
    const packet: StatusPacket = { type: 'status', from: this.me, ...status };
    for (let to = 1; to <= this.n; to++) if (to !== this.me && !carried.has(to)) this.outgoing.push({ to, packet });
    this.statusDue = false;
    this.lastStatusAt = this.now;
    if (!everyoneCarried) this.counters.statusesSent++;
  }

  private advanceTime(now: number): void {
    if (now > this.now) this.now = now;
  }
}
