#!/usr/bin/env node
/**
 * tools/bench (make bench): start a five-daemon cluster on free ports with a
 * temporary data directory and measure, in one run: the raw UDP baseline,
 * throughput (and the CPU it costs per append), the protocol alone, the
 * chat state machine alone (one daemon's CPU per message), the latency
 * floor of the machine (five processes that only persist, send and
 * acknowledge), latency at a fixed load set beside that floor, heal time,
 * catch-up and restart time, footprint, and at scale: a history of
 * --history messages (RSS, disk, restart). Prints one table; --out writes
 * the same as JSON.
 * QUICK=1 (or --quick) runs a short version for CI smoke tests.
 */
import { usageFailure } from '../commandLine.js';
import { execFile, type ChildProcess } from 'node:child_process';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { EngineCounters } from '../broadcast/engine.js';
import { ChorusConnection, openWebSocketChannel } from '../client/connection.js';
import { ClientSession, timestampOf } from '../client/session.js';
import { loadClusterConfig } from '../config/clusterConfig.js';
import { ensureClusterKey } from '../config/clusterKey.js';
import type { ControlMethods, Progress } from '../daemon/controlServer.js';
import { loopDelay, type Percentiles, type Timings } from '../daemon/timings.js';
import { LocalCluster, type ClusterServerStatus } from '../tools/localCluster.js';
import { freePorts } from '../tools/freePorts.js';
import { connectControl, daemonNodeOptions, diskBytes, nodeArgs, serverDir } from '../tools/clusterProcesses.js';
import type { ChatStateNodeResult } from './chatStateNode.js';
import type { FloorNodeResult } from './floorNode.js';
import type { ProtocolNodeResult } from './protocolNode.js';
import type { RpcFloorServerResult } from './rpcFloorServer.js';

const here = dirname(fileURLToPath(import.meta.url));
/** The cores the daemons, the helpers and the load client share. */
const cores = availableParallelism();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


interface Scale {
  throughputS: number;
  /** The throughput phase floods this long before it measures (the daemons' JIT warms up). */
  throughputWarmupS: number;
  latencyS: number;
  /** The latency phase appends at its rate this long before it measures, as the floor and protocol-only runs do. */
  latencyWarmupS: number;
  healPerSide: number;
  catchUp: number;
  footprint: number;
  /** Messages the scale phase loads the cluster with. */
  history: number;
  /** Appends the chat state phase applies, per run. */
  chatState: number;
}

const fullScale: Scale = { throughputS: 10, throughputWarmupS: 3, latencyS: 10, latencyWarmupS: 2, healPerSide: 20_000, catchUp: 50_000, footprint: 100_000, history: 1_000_000, chatState: 200_000 };
/** Quick: the scale phase's history well above what the phases before it load (16,000-25,000 messages), so that its points differ. */
const quickScale: Scale = { throughputS: 2, throughputWarmupS: 0.5, latencyS: 2, latencyWarmupS: 0.5, healPerSide: 1_000, catchUp: 3_000, footprint: 10_000, history: 50_000, chatState: 20_000 };
/** Operations per second in the latency phase and the protocol-only phase's fixed-rate run. */
const latencyRate = 1000;
const text200 = 'x'.repeat(200);

function percentiles(samples: number[]): { p50: number; p99: number; max: number; count: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => (sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? NaN, count: sorted.length };
}

function udpRcvbufErrors(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const names = lines[0].split(/\s+/);
  const values = lines[1].split(/\s+/);
  return Number(values[names.indexOf('RcvbufErrors')]);
}


/**
 * How the bench's clients append: as the client library does by default
 * (each append with its request id and the stream's doneBelow, so that a
 * retry is applied once), or bare (neither: what the bench measured before
 * December 2026, and what a program that never retries may send).
 */
type AppendPath = 'session' | 'bare';

/** A client that keeps up to `window` appends in flight and times each confirmation. */
class Appender {
  acked: { id: string; sentAt: number; ackAt: number }[] = [];
  failures = 0;
  private closed = false;
  /** When each message was first pushed here: only in the latency phase (under a flood, a map of every message is the load client's own cost, on the daemons' cores). */
  readonly seenAt = new Map<string, number>();

  /** The client library's session: with request ids and doneBelow, as every client sends them, unless the bench runs `--bare`. */
  readonly session: ClientSession;

  private constructor(user: string, group: string, path: AppendPath, timePushes: boolean) {
    const pushed = (push: { messages: readonly { id: string }[] }) => {
      const now = performance.now();
      for (const m of push.messages) if (!this.seenAt.has(m.id)) this.seenAt.set(m.id, now);
    };
    this.session = new ClientSession(openWebSocketChannel, timePushes ? { pushed } : {}, { user, group, bare: path === 'bare' });
  }

  static async open(address: string, user: string, group: string, path: AppendPath, timePushes = false): Promise<Appender> {
    const appender = new Appender(user, group, path, timePushes);
    await appender.session.connect(address);
    return appender;
  }

  /** One append, timed; false if it failed. */
  async appendOne(): Promise<boolean> {
    const sentAt = performance.now();
    try {
      const { id } = await this.session.append(text200);
      this.acked.push({ id, sentAt, ackAt: performance.now() });
      return true;
    } catch {
      this.failures++;
      return false;
    }
  }

  /** Append as fast as confirmations allow, `window` at a time, until `stop()` or `count` are done, or the appender is closed. */
  async flood(stop: () => boolean, window: number, count = Infinity): Promise<void> {
    let started = 0;
    const worker = async () => {
      while (!stop() && !this.closed && started < count) {
        started++;
        // A failed append (its server stopped) may fail at once: yield, so that a flood never holds the event loop.
        if (!(await this.appendOne())) await new Promise((r) => setImmediate(r));
      }
    };
    await Promise.all(Array.from({ length: window }, worker));
  }

  close(): void {
    this.closed = true;
    this.session.close();
  }
}

/** An appender on a process that may not listen yet (a helper just started): tried again until `deadline` (epoch ms). */
async function openWhenListening(address: string, user: string, path: AppendPath, deadline: number): Promise<Appender> {
  for (;;) {
    try {
      return await Appender.open(address, user, 'floor', path);
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await sleep(50);
    }
  }
}

class Bench {
  private appenders: Appender[] = [];
  /** Processes a phase started besides the cluster (protocol-only nodes, UDP fan-out): killed if the bench is interrupted. */
  private readonly helpers = new Set<ChildProcess>();
  readonly results: Record<string, unknown> = {};

  constructor(
    readonly cluster: LocalCluster,
    readonly sizes: Scale,
    private readonly say: (line: string) => void,
    private readonly path: AppendPath,
  ) {
    this.results.appendPath = path;
  }

  address(id: number): string {
    const s = this.cluster.config.servers[id - 1];
    return `${s.host}:${s.clientPort}`;
  }

  private readonly control = new Map<number, { pid: number; connection: ChorusConnection<ControlMethods> }>();

  /** A server's progress over a kept-open control connection (polls must not cost a connection each). */
  async progress(id: number, digest = true): Promise<Progress | undefined> {
    const pid = this.cluster.pid(id);
    if (pid === undefined) return undefined;
    let entry = this.control.get(id);
    if (!entry || entry.pid !== pid || !entry.connection.connected) {
      entry?.connection.close();
      const connection = await connectControl(this.cluster.paths, id, 1000);
      if (!connection) return undefined;
      entry = { pid, connection };
      this.control.set(id, entry);
    }
    try {
      return await entry.connection.call('progress', { digest });
    } catch {
      return undefined;
    }
  }

  async allProgress(digest = true): Promise<(Progress | undefined)[]> {
    return Promise.all(this.cluster.ids.map((id) => this.progress(id, digest)));
  }

  /** Poll (every `pollMs`) until every server's progress satisfies `ok`; after `timeoutMs`, an error naming the servers that do not (or do not answer). */
  async waitUntil(ok: (p: Progress) => boolean, timeoutMs: number, pollMs = 20): Promise<void> {
    const start = performance.now();
    for (;;) {
      const all = await this.allProgress(false);
      if (all.every((p) => p && ok(p))) return;
      if (performance.now() - start > timeoutMs) {
        const behind = this.cluster.ids.flatMap((id, i) => (!all[i] ? [`server ${id} (not answering: see its log)`] : ok(all[i]!) ? [] : [`server ${id}`]));
        throw new Error(`not reached within ${timeoutMs} ms by ${behind.join(', ')}`);
      }
      await sleep(pollMs);
    }
  }

  /** Each server's event-loop delay and group-commit times since the last reset (and reset them). */
  async timings(): Promise<Timings[]> {
    await this.allProgress(false); // opens the control connections
    const all = await Promise.all(this.cluster.ids.map((id) => this.control.get(id)?.connection.call('timings', { reset: true }).catch(() => undefined)));
    return all.filter((t): t is Timings => t !== undefined);
  }

  /** fdatasync of a 200-byte append on the disk the daemons write to, timed here: what latency is compared with. */
  async disk(): Promise<void> {
    this.say('disk: 500 appends of 200 bytes, each followed by fdatasync');
    const file = join(this.cluster.paths.dataRoot, 'fdatasync-probe');
    const fd = openSync(file, 'a');
    const samples: number[] = [];
    try {
      for (let i = 0; i < 500; i++) {
        const start = performance.now();
        writeSync(fd, text200);
        fdatasyncSync(fd);
        samples.push(performance.now() - start);
      }
    } finally {
      closeSync(fd);
      rmSync(file, { force: true });
    }
    this.results.disk = { fdatasync: percentiles(samples) };
  }

  /** Run a node script of this folder to its end; its standard output. */
  private runHelper(args: string[], timeoutMs?: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = execFile(process.execPath, args, { timeout: timeoutMs }, (error, stdout) => {
        this.helpers.delete(child);
        if (error) reject(error);
        else resolve(stdout);
      });
      this.helpers.add(child);
    });
  }

  killHelpers(): void {
    for (const child of this.helpers) child.kill('SIGKILL');
  }

  closeControl(): void {
    for (const { connection } of this.control.values()) connection.close();
    this.control.clear();
  }

  /**
   * Wait until the servers hold the same messages (and, with `stable`, all
   * stable with one digest). Returns ms until they did. The digest is
   * asked for only once the vectors agree (it hashes the tentative suffix:
   * polled every few milliseconds during a heal it would load the daemons
   * being measured), and the time it takes to compute is not counted.
   */
  async converge(timeoutMs: number, ids = this.cluster.ids, stable = true): Promise<number> {
    const start = performance.now();
    for (;;) {
      const all = await Promise.all(ids.map((id) => this.progress(id, false)));
      const at = performance.now();
      const first = all[0];
      const same = (p: Progress | undefined) => p && p.seqVector.join() === first!.seqVector.join() && (!stable || p.unstable === 0);
      if (first && all.every(same) && (!stable || (await this.sameDigest(ids)))) return at - start;
      if (performance.now() - start > timeoutMs) throw new Error(`no convergence within ${timeoutMs} ms`);
      await sleep(5);
    }
  }

  private async sameDigest(ids: readonly number[]): Promise<boolean> {
    const digests = await Promise.all(ids.map((id) => this.progress(id, true).then((p) => p?.digest)));
    return digests.every((d) => d !== undefined && d === digests[0]);
  }

  /** The cluster's retransmission counters and the daemons' CPU time now (servers that do not answer count nothing), and the kernel's UDP overflow count. */
  async retransmissionMark(): Promise<RetransmissionMark> {
    const engine: Partial<Record<keyof EngineCounters, number>> = {};
    const all = await this.allProgress(false);
    for (const p of all) {
      if (!p) continue;
      for (const [key, value] of Object.entries(p.engine) as [keyof EngineCounters, number][]) engine[key] = (engine[key] ?? 0) + value;
    }
    return { engine, cpuMs: all.map((p) => p?.cpuMs ?? 0), overflow: udpRcvbufErrors() };
  }

  /** Retransmission since `mark`, in a phase in which `deliveries` messages had to reach servers that lacked them. */
  async retransmissionSince(mark: RetransmissionMark, deliveries: number): Promise<Record<string, number>> {
    const now = await this.retransmissionMark();
    const grown = (key: keyof EngineCounters) => (now.engine[key] ?? 0) - (mark.engine[key] ?? 0);
    return {
      nacksSent: grown('nacksSent'),
      nacksResent: grown('nacksResent'),
      retransmitted: grown('retransmitted'),
      duplicates: grown('duplicates'),
      beyondWindow: grown('beyondWindow'),
      retransmittedPerDelivery: grown('retransmitted') / deliveries,
      datagramsLostToOverflow: now.overflow - mark.overflow,
      // A relaunched daemon's CPU time starts from zero.
      ...cpuSince(mark.cpuMs, now.cpuMs),
    };
  }

  async openAppenders(perServer: number, group: string, timePushes = false): Promise<void> {
    this.closeAppenders();
    for (const id of this.cluster.ids) {
      for (let k = 0; k < perServer; k++) this.appenders.push(await Appender.open(this.address(id), `b${id}x${k}`, group, this.path, timePushes));
    }
  }

  closeAppenders(): void {
    for (const a of this.appenders) a.close();
    this.appenders = [];
  }

  /**
   * Ten clients flood appends; what they get through after a warm-up is
   * measured, as the protocol-only phase measures its nodes. A fresh
   * daemon's first seconds go to V8's optimizing compiler as much as to the
   * appends, and the measured window is not free of it: perf on this
   * machine (December 2026) put compilation at 54 % of the daemons' CPU in
   * a flood's first 8 s, 23 % in the next 4, 10 % in the 4 after, 3-5 %
   * from then on. Three 40 s windows gave 15,700-18,200 appends a second
   * (bare), where this one gave 13,000-16,000 that hour.
   */
  async throughput(): Promise<void> {
    const { throughputS, throughputWarmupS } = this.sizes;
    this.say(`throughput: 10 clients flooding 200-byte appends (${this.path === 'bare' ? 'bare' : 'with request ids'}) for ${throughputWarmupS} s of warm-up, then ${throughputS} s measured`);
    await this.openAppenders(2, 'throughput');
    let end = Infinity;
    const flooding = Promise.all(this.appenders.map((a) => a.flood(() => performance.now() >= end, 32)));
    await sleep(throughputWarmupS * 1000);
    const before = await this.cluster.statuses(false);
    await this.timings();
    const overflowBefore = udpRcvbufErrors();
    const cpuBefore = await this.retransmissionMark();
    const clientCpuBefore = process.cpuUsage();
    const ackedBefore = this.appenders.map((a) => a.acked.length);
    const start = performance.now();
    end = start + throughputS * 1000;
    await flooding;
    const elapsed = (performance.now() - start) / 1000;
    const acked = this.appenders.flatMap((a, i) => a.acked.slice(ackedBefore[i]));
    const maxTs = acked.reduce((max, a) => Math.max(max, timestampOf(a.id)), 0);
    await this.waitUntil((p) => p.stableTs >= maxTs, 120_000, 5);
    const stableElapsed = (performance.now() - start) / 1000;
    const clientCpu = process.cpuUsage(clientCpuBefore);
    const { daemonsCpuMs } = cpuSince(cpuBefore.cpuMs, (await this.retransmissionMark()).cpuMs);
    const timings = await this.timings();
    const after = await this.cluster.statuses(false);
    const datagrams = growth(before, after, (s) => s.transport.datagramsOut);
    const bytes = growth(before, after, (s) => s.transport.bytesOut);
    const dataPackets = growth(before, after, (s) => s.transport.dataDatagramsOut);
    const syncs = growth(before, after, (s) => s.journal.syncs);
    const reapplied = growth(before, after, (s) => s.reappliedMessages);
    this.results.throughput = {
      seconds: elapsed,
      warmupS: throughputWarmupS,
      confirmedPerS: acked.length / elapsed,
      stableAtAllFivePerS: acked.length / stableElapsed,
      failures: this.appenders.reduce((t, a) => t + a.failures, 0),
      datagramsLostToOverflow: udpRcvbufErrors() - overflowBefore,
      datagramsPerS: datagrams / elapsed,
      avgDatagramBytes: bytes / datagrams,
      messagesPerDataDatagram: (acked.length * 4) / Math.max(1, dataPackets),
      fsyncsPerS: syncs / elapsed,
      reappliedPerMessage: reapplied / Math.max(1, acked.length * 5),
      daemonsCpuMs,
      daemonsCpuPerAppendUs: (daemonsCpuMs * 1000) / Math.max(1, acked.length),
      loadClientCpuMs: (clientCpu.user + clientCpu.system) / 1000,
      loadClientCpuPerAppendUs: (clientCpu.user + clientCpu.system) / Math.max(1, acked.length),
      ...worst(timings),
    };
    this.closeAppenders();
  }

  async baseline(): Promise<void> {
    // Without a throughput phase, datagrams of the size Chorus fills under load.
    const t = (this.results.throughput as { avgDatagramBytes: number; messagesPerDataDatagram: number } | undefined) ?? { avgDatagramBytes: 6800, messagesPerDataDatagram: 49 };
    const bytes = Math.max(64, Math.round(t.avgDatagramBytes));
    this.say(`baseline: 5 processes fanning out ${bytes}-byte datagrams as fast as they can`);
    const ports = await freePorts(5);
    const durationMs = this.sizes.throughputS >= 10 ? 3000 : 1000;
    const runs = await Promise.all(
      ports.map((_, i) =>
        this.runHelper([join(here, 'udpFanout.js'), String(i + 1), ports.join(','), String(bytes), String(durationMs)]).then((stdout) => JSON.parse(stdout) as { sent: number; received: number }),
      ),
    );
    const received = runs.reduce((t, r) => t + r.received, 0);
    const datagramsPerS = received / (durationMs / 1000);
    // Each message must reach the four others; raw UDP at Chorus's batching could carry this many messages to all five per second.
    const messagesPerS = (datagramsPerS / 4) * t.messagesPerDataDatagram;
    this.results.baseline = { datagramBytes: bytes, datagramsReceivedPerS: datagramsPerS, messageEquivalentPerS: messagesPerS };
  }

  /**
   * Five more processes on their own ports, each originating 200-byte
   * broadcasts itself (no RPC, no chat): as fast as they can with fsync on
   * and then off (messages delivered, stable, at all five per second), then
   * with fsync on at the latency phase's rate (the daemons' own latency
   * figures: the floor the protocol, the disk and the cores set before any
   * RPC or chat work). The cluster idles.
   */
  async protocol(): Promise<void> {
    const measureMs = this.sizes.throughputS * 1000;
    const warmupMs = Math.min(2000, measureMs / 2);
    this.say(`protocol only: each of 5 processes broadcasting 200-byte messages itself for ${(warmupMs + measureMs) / 1000} s, fsync on, then off, then at ${latencyRate}/s`);
    const flood = async (fsync: 'on' | 'off') => {
      const runs = await this.runProtocolNodes(fsync, warmupMs, measureMs);
      const perS = (f: (r: ProtocolNodeResult) => number) => runs.map((r) => (f(r) * 1000) / r.measuredMs);
      return {
        deliveredAtAllFivePerS: Math.min(...perS((r) => r.delivered)),
        originatedPerS: perS((r) => r.originated).reduce((a, b) => a + b, 0),
        groupCommitsPerS: perS((r) => r.groupCommits).reduce((a, b) => a + b, 0),
        eventLoopDelayMaxMs: Math.max(...runs.map((r) => r.eventLoopDelayMaxMs)),
        journalSyncP50Ms: Math.max(...runs.map((r) => r.journalSyncP50Ms)),
        cpuPerMessageUs: cpuPerMessageUs(runs),
      };
    };
    const fsyncOn = await flood('on');
    const fsyncOff = await flood('off');
    const atRateRuns = await this.runProtocolNodes('on', warmupMs, measureMs, latencyRate);
    const timings = atRateRuns.map((r) => r.timings!);
    const atRate = { rate: latencyRate, stableHere: fromServers(timings, (t) => t.stableHere), stableAtAllFive: fromServers(timings, (t) => t.stableEverywhere), cpuPerMessageUs: cpuPerMessageUs(atRateRuns), ...worst(timings) };
    this.results.protocol = { fsyncOn, fsyncOff, atRate };
  }

  /** Run five protocol-only nodes (protocolNode.ts) in a cluster of their own; their results. */
  private async runProtocolNodes(fsync: 'on' | 'off', warmupMs: number, measureMs: number, rate?: number): Promise<ProtocolNodeResult[]> {
    const root = join(this.cluster.paths.dataRoot, `protocol-${fsync}${rate === undefined ? '' : `-${rate}`}`);
    const ports = await freePorts(10);
    const configFile = join(root, 'clusterconfig');
    const keyFile = join(root, 'cluster.key');
    ensureClusterKey(keyFile);
    writeFileSync(configFile, Array.from({ length: 5 }, (_, i) => `127.0.0.1 ${ports[2 * i]} ${ports[2 * i + 1]}\n`).join(''));
    const startAt = Date.now() + 1500;
    const perNode = rate === undefined ? [] : [String(rate / 5)];
    try {
      return await Promise.all(
        [1, 2, 3, 4, 5].map((id) =>
          this.runHelper(
            [...daemonNodeOptions, ...nodeArgs(), join(here, 'protocolNode.js'), String(id), configFile, keyFile, join(root, `server${id}`), String(startAt), String(warmupMs), String(measureMs), '200', fsync, ...perNode],
            startAt - Date.now() + warmupMs + measureMs + 30_000,
          ).then((stdout) => JSON.parse(stdout) as ProtocolNodeResult),
        ),
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }

  /**
   * The RPC floor (rpcFloorServer.ts): five processes that answer the
   * clients' JSON-RPC as a daemon's client port would and do nothing else,
   * flooded by ten sessions of the client library as the throughput phase
   * floods the daemons. Beside the protocol alone it bounds the chat path on
   * these cores: with no chat work at all, an append costs at least the RPC
   * floor's CPU and the protocol's. The cluster idles.
   */
  async rpcFloor(): Promise<void> {
    const measureMs = this.sizes.throughputS * 1000;
    const warmupMs = Math.min(2000, measureMs / 2);
    this.say(`RPC floor: 5 processes that only answer requests, 10 clients flooding 200-byte appends for ${(warmupMs + measureMs) / 1000} s`);
    const ports = await freePorts(5);
    const startAt = Date.now() + 1000;
    const measureFrom = startAt + warmupMs;
    const measureUntil = measureFrom + measureMs;
    const servers = ports.map((port, i) =>
      this.runHelper([join(here, 'rpcFloorServer.js'), String(i + 1), String(port), String(startAt), String(warmupMs), String(measureMs)], measureUntil - Date.now() + 30_000).then(
        (stdout) => JSON.parse(stdout) as RpcFloorServerResult,
      ),
    );
    // A server that fails is reported where its result is awaited, not as an unhandled rejection before.
    for (const server of servers) server.catch(() => undefined);
    const epochNow = () => performance.timeOrigin + performance.now();
    try {
      this.closeAppenders();
      for (const port of ports) for (let k = 0; k < 2; k++) this.appenders.push(await openWhenListening(`127.0.0.1:${port}`, `f${port}x${k}`, this.path, startAt));
      const flooding = Promise.all(this.appenders.map((a) => a.flood(() => epochNow() >= measureUntil, 32)));
      await sleep(measureFrom - epochNow());
      const cpuBefore = process.cpuUsage();
      const ackedBefore = this.appenders.reduce((t, a) => t + a.acked.length, 0);
      await sleep(measureUntil - epochNow());
      const clientCpu = process.cpuUsage(cpuBefore);
      const acked = this.appenders.reduce((t, a) => t + a.acked.length, 0) - ackedBefore;
      await flooding;
      this.closeAppenders();
      const results = await Promise.all(servers);
      const serversCpuMs = results.reduce((t, r) => t + r.cpuMs, 0);
      this.results.rpcFloor = {
        appendsPerS: acked / (measureMs / 1000),
        serversCpuPerAppendUs: (serversCpuMs * 1000) / Math.max(1, acked),
        clientCpuPerAppendUs: (clientCpu.user + clientCpu.system) / Math.max(1, acked),
      };
    } finally {
      this.closeAppenders();
    }
  }

  /** Runs of a phase whose figure varies from run to run, of which the median is kept: three, one when quick. */
  private get repeats(): number {
    return this.sizes.latencyS >= 10 ? 3 : 1;
  }

  /**
   * The chat state machine alone (chatStateNode.ts): one daemon's CPU per
   * message for the chat's own work, without the network, the journal or
   * the RPC, which every daemon spends on every message. In-process and on
   * an idle cluster, so it varies far less than the cluster's figures: the
   * median of three runs (one when quick).
   */
  async chatState(): Promise<void> {
    const runs = this.repeats;
    const count = this.sizes.chatState;
    this.say(`chat state alone: ${count.toLocaleString('en-US')} appends applied as one daemon applies them, ${runs} run${runs === 1 ? '' : 's'}`);
    const results: ChatStateNodeResult[] = [];
    for (let run = 0; run < runs; run++) {
      const dir = join(this.cluster.paths.dataRoot, `chat-state-${run}`);
      try {
        results.push(JSON.parse(await this.runHelper([...daemonNodeOptions, ...nodeArgs(), join(here, 'chatStateNode.js'), dir, String(count), ...(this.path === 'bare' ? ['bare'] : [])], 120_000)) as ChatStateNodeResult);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const perMessage = results.map((r) => (r.cpuMs * 1000) / r.messages);
    this.results.chatState = { messages: count, runs, cpuPerMessageUs: median(perMessage), runsCpuPerMessageUs: perMessage };
  }

  /**
   * The latency floor on this machine (floorNode.ts): five processes that
   * only persist, send and acknowledge, at the latency phase's rate. Its
   * p99 varies from run to run, so it runs three times (once when quick)
   * and the medians are kept. The cluster idles.
   */
  async floor(): Promise<void> {
    const runs = this.repeats;
    this.say(`floor: 5 processes that only persist, send and acknowledge, ${latencyRate} messages/s for ${this.sizes.latencyS} s, ${runs} run${runs === 1 ? '' : 's'}`);
    const results: FloorNodeResult[][] = [];
    for (let run = 0; run < runs; run++) results.push(await this.runFloorNodes(run));
    // Each run's figure is its worst process's, as for the daemons.
    const worstOf = (nodes: FloorNodeResult[], f: (n: FloorNodeResult) => number) => Math.max(...nodes.map(f));
    const p50s = results.map((nodes) => worstOf(nodes, (n) => n.stableHere.p50));
    const p99s = results.map((nodes) => worstOf(nodes, (n) => n.stableHere.p99));
    this.results.floor = {
      rate: latencyRate,
      runs,
      stableHere: { p50: median(p50s), p99: median(p99s) },
      runsStableHere: p50s.map((p50, i) => ({ p50, p99: p99s[i] })),
      groupCommitP50Ms: median(results.map((nodes) => worstOf(nodes, (n) => n.groupCommitP50Ms))),
      cpuPerMessageUs: median(results.map(cpuPerMessageUs)),
    };
  }

  private async runFloorNodes(run: number): Promise<FloorNodeResult[]> {
    const root = join(this.cluster.paths.dataRoot, `floor-${run}`);
    const ports = await freePorts(5);
    const startAt = Date.now() + 500;
    const warmupMs = 1000;
    const measureMs = this.sizes.latencyS * 1000;
    try {
      return await Promise.all(
        ports.map((_, i) =>
          this.runHelper(
            [join(here, 'floorNode.js'), String(i + 1), ports.join(','), root, String(startAt), String(warmupMs), String(measureMs), String(latencyRate / 5), '200'],
            startAt - Date.now() + warmupMs + measureMs + 30_000,
          ).then((stdout) => JSON.parse(stdout) as FloorNodeResult),
        ),
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }

  async latency(): Promise<void> {
    const rate = latencyRate;
    const { latencyS, latencyWarmupS } = this.sizes;
    this.say(`latency: ${rate} appends/s spread over the servers, ${latencyWarmupS} s of warm-up, then ${latencyS} s measured`);
    await this.openAppenders(1, 'latency', true);
    // At this rate the daemons run paths the flood did not make hot: measured once they are compiled, as the floor's and protocol-only's runs are.
    await this.appendAtRate(rate, latencyWarmupS);
    const ackedBefore = this.appenders.map((a) => a.acked.length);
    // The warm-up's operations stable everywhere first, so that none is timed with the measured ones.
    const warmTs = this.appenders.flatMap((a) => a.acked).reduce((max, a) => Math.max(max, timestampOf(a.id)), 0);
    await this.waitUntil((p) => p.stableEverywhereTs >= warmTs, 10_000);
    const before = await this.cluster.statuses(false);
    await this.timings();
    const cpuBefore = await this.retransmissionMark();
    // The load client's own delays are in what it measures (append -> ack, -> seen elsewhere): shown beside them.
    const clientLoop = monitorEventLoopDelay({ resolution: 10 });
    clientLoop.enable();
    await this.appendAtRate(rate, latencyS);
    const { daemonsCpuMs } = cpuSince(cpuBefore.cpuMs, (await this.retransmissionMark()).cpuMs);
    clientLoop.disable();
    const clientDelay = loopDelay(clientLoop);
    const acked = this.appenders.flatMap((a, k) => a.acked.slice(ackedBefore[k]).map((x) => ({ ...x, k })));
    // Until every operation is stable at all five and the servers have seen it so; nobody polls meanwhile.
    const lastTs = acked.reduce((max, a) => Math.max(max, timestampOf(a.id)), 0);
    await this.waitUntil((p) => p.stableEverywhereTs >= lastTs, 10_000);
    const timings = await this.timings();
    const after = await this.cluster.statuses(false);
    const reapplied = growth(before, after, (s) => s.reappliedMessages);
    const ackMs = acked.map((a) => a.ackAt - a.sentAt);
    const seenMs: number[] = [];
    for (const a of acked) {
      const other = this.appenders[(a.k + 1) % this.appenders.length];
      const seen = other.seenAt.get(a.id);
      if (seen !== undefined) seenMs.push(seen - a.sentAt);
    }
    this.results.latency = {
      rate,
      warmupS: latencyWarmupS,
      ack: percentiles(ackMs),
      seenElsewhere: percentiles(seenMs),
      confirmedAtServer: fromServers(timings, (t) => t.confirmed),
      stableHere: fromServers(timings, (t) => t.stableHere),
      stableAtAllFive: fromServers(timings, (t) => t.stableEverywhere),
      reappliedPerMessage: reapplied / Math.max(1, acked.length * 5),
      daemonsCpuPerAppendUs: (daemonsCpuMs * 1000) / Math.max(1, acked.length),
      clientEventLoopDelay: { p99: clientDelay.p99Ms, max: clientDelay.maxMs },
      ...worst(timings),
    };
    this.closeAppenders();
  }

  /** Append `rate` a second, spread over the appenders in turn, for `seconds`; resolves once every one is answered. */
  private async appendAtRate(rate: number, seconds: number): Promise<void> {
    const sends: Promise<boolean>[] = [];
    const start = performance.now();
    const total = Math.round(rate * seconds);
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      sends.push(this.appenders[i % this.appenders.length].appendOne());
    }
    await Promise.all(sends);
  }

  async heal(): Promise<void> {
    const perSide = this.sizes.healPerSide;
    this.say(`heal: partition {1,2} | {3,4,5}, ${perSide} appends on each side, heal`);
    await this.cluster.partition([[1, 2], [3, 4, 5]]);
    await sleep(2000);
    await this.openAppenders(1, 'heal');
    const left = this.appenders.slice(0, 2);
    const right = this.appenders.slice(2);
    const spread = (side: Appender[], count: number) =>
      Promise.all(side.map((a, i) => a.flood(() => false, 32, Math.floor(count / side.length) + (i === 0 ? count % side.length : 0))));
    await Promise.all([spread(left, perSide), spread(right, perSide)]);
    const mark = await this.retransmissionMark();
    const before = await this.cluster.statuses(false);
    const healStart = performance.now();
    await this.cluster.heal();
    await this.converge(60_000);
    const convergedMsAfterHeal = performance.now() - healStart;
    const after = await this.cluster.statuses(false);
    // Each side lacks the other's appends: {1,2} the right side's, {3,4,5} the left side's.
    const deliveries = 2 * perSide + 3 * perSide;
    // The chat operations each server applied again because messages from the other side landed before its own.
    const reappliedPerServer = growth(before, after, (s) => s.reappliedMessages) / 5;
    this.results.heal = { perSide, convergedMsAfterHeal, reappliedPerServer, ...(await this.retransmissionSince(mark, deliveries)) };
    this.closeAppenders();
  }

  async catchUp(): Promise<void> {
    const count = this.sizes.catchUp;
    this.say(`catch-up: kill server 5, append ${count}, relaunch, wait until it has caught up`);
    await this.cluster.kill(5);
    await this.openAppendersOn([1, 2, 3, 4], 'catchup');
    await Promise.all(this.appenders.map((a, i) => a.flood(() => false, 32, Math.floor(count / 4) + (i === 0 ? count % 4 : 0))));
    this.closeAppenders();
    await this.converge(60_000, [1, 2, 3, 4], false);
    // Server 5 is down: its counters start from zero when it is relaunched.
    const mark = await this.retransmissionMark();
    const start = performance.now();
    await this.cluster.relaunch(5);
    const answeredMs = performance.now() - start;
    await this.converge(120_000, this.cluster.ids, false);
    const caughtUpMs = performance.now() - start;
    const sent = await this.retransmissionSince(mark, count);
    await this.converge(60_000);
    this.results.catchUp = { messages: count, relaunchAnswersMs: answeredMs, caughtUpMs, stableEverywhereMs: performance.now() - start, ...sent };
  }

  private async openAppendersOn(ids: number[], group: string): Promise<void> {
    this.closeAppenders();
    for (const id of ids) this.appenders.push(await Appender.open(this.address(id), `c${id}`, group, this.path));
  }

  async totalMessages(): Promise<number> {
    const p = await this.progress(1);
    return p ? p.seqVector.reduce((a, b) => a + b, 0) : 0;
  }

  /** Append until the cluster's order holds `target` messages (200-byte appends from two clients per server). */
  private async loadTo(target: number, group: string, what: string): Promise<void> {
    const need = target - (await this.totalMessages());
    if (need <= 0) return;
    this.say(`${what}: loading up to ${target.toLocaleString('en-US')} messages`);
    await this.openAppenders(2, group);
    const n = this.appenders.length;
    const appenders = this.appenders;
    const stopProgress = this.reportProgress(what, need, () => appenders.reduce((t, a) => t + a.acked.length + a.failures, 0));
    await Promise.all(appenders.map((a, i) => a.flood(() => false, 32, Math.floor(need / n) + (i === 0 ? need % n : 0))));
    stopProgress();
    this.closeAppenders();
  }

  /** Every 10 s, how far a long phase has come and about how long it has to go; returns the function that stops it. */
  private reportProgress(what: string, total: number, done: () => number): () => void {
    const started = performance.now();
    const timer = setInterval(() => {
      const count = done();
      const elapsedS = (performance.now() - started) / 1000;
      const leftS = count > 0 ? (elapsedS / count) * (total - count) : NaN;
      this.say(`${what}: ${count.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} appended, ${elapsedS.toFixed(0)} s so far${Number.isFinite(leftS) ? `, about ${leftS.toFixed(0)} s to go` : ''}`);
    }, 10_000);
    return () => clearInterval(timer);
  }

  async footprint(): Promise<void> {
    await this.loadTo(this.sizes.footprint, 'footprint', 'footprint');
    const measure = async () => {
      const all = await this.allProgress();
      return {
        messages: await this.totalMessages(),
        rssMiB: all.map((p) => (p ? p.rssBytes / 2 ** 20 : NaN)),
        diskMiB: this.cluster.ids.map((id) => diskBytes(serverDir(this.cluster.paths, id)) / 2 ** 20),
      };
    };
    const loaded = await measure();
    this.say('footprint: waiting for garbage collection and the idle snapshot');
    await this.converge(60_000);
    await sleep(3500); // the bench daemons snapshot after 2 s idle
    const statuses = await this.cluster.statuses(false);
    const quiesced = await measure();
    const snapshotMiB = this.cluster.ids.map((id) => statSync(join(serverDir(this.cluster.paths, id), 'snapshot.json')).size / 2 ** 20);
    this.results.footprint = { loaded, quiesced, retained: statuses.map((s) => s?.retained ?? -1), snapshotMiB };
  }

  async restart(): Promise<void> {
    this.results.restart = await this.restartOne(3, 'restart');
  }

  /** Kill a server and relaunch it: ms until it answers, with how many messages its log files hold. */
  private async restartOne(id: number, what: string): Promise<{ messages: number; answersMs: number }> {
    const messages = await this.totalMessages();
    this.say(`${what}: kill server ${id} (its log files hold ${messages.toLocaleString('en-US')} messages) and relaunch it`);
    await this.cluster.kill(id);
    const start = performance.now();
    await this.cluster.relaunch(id);
    const answersMs = performance.now() - start;
    await this.converge(60_000);
    return { messages, answersMs };
  }

  /**
   * The cluster loaded with a long history (scale.history messages): each
   * daemon's RSS and disk once quiet at a tenth, half and all of it (growth
   * per message from half to all), and a restart at a tenth and at all of it.
   */
  async scale(): Promise<void> {
    const target = this.sizes.history;
    const points: { messages: number; rssMiB: number[]; diskBytes: number[]; historyBytes: number[] }[] = [];
    const restarts: { messages: number; answersMs: number }[] = [];
    for (const [i, at] of [Math.round(target / 10), Math.round(target / 2), target].entries()) {
      await this.loadTo(at, 'scale', 'scale');
      await this.converge(120_000);
      await sleep(3500); // the bench daemons snapshot after 2 s idle
      const all = await this.allProgress(false);
      const dirs = this.cluster.ids.map((id) => serverDir(this.cluster.paths, id));
      points.push({
        messages: await this.totalMessages(),
        rssMiB: all.map((p) => (p ? p.rssBytes / 2 ** 20 : NaN)),
        diskBytes: dirs.map((dir) => diskBytes(dir)),
        historyBytes: dirs.map((dir) => diskBytes(join(dir, 'history'))),
      });
      if (i !== 1) restarts.push(await this.restartOne(2, 'scale'));
    }
    const all = points[2];
    // Growth from half; from the last point with fewer messages if the earlier phases loaded more than half already.
    const from = [...points].reverse().find((p) => p.messages < all.messages) ?? points[0];
    const maxOf = (xs: number[]) => Math.max(...xs);
    this.results.scale = {
      points,
      restarts,
      rssGrowthBytesPerMessage: ((maxOf(all.rssMiB) - maxOf(from.rssMiB)) * 2 ** 20) / (all.messages - from.messages),
      diskBytesPerMessage: maxOf(all.diskBytes) / all.messages,
      historyBytesPerMessage: maxOf(all.historyBytes) / all.messages,
    };
  }
}

/** How much a counter grew across the cluster between two readings of every server's status. */
function growth(before: (ClusterServerStatus | undefined)[], after: (ClusterServerStatus | undefined)[], counter: (s: ClusterServerStatus) => number): number {
  const total = (list: (ClusterServerStatus | undefined)[]) => list.reduce((t, s) => t + (s ? counter(s) : 0), 0);
  return total(after) - total(before);
}

/** One latency figure over the servers: the worst server's percentiles, everyone's samples. */
function fromServers(timings: Timings[], f: (t: Timings) => Percentiles): { p50: number; p99: number; max: number; count: number } {
  return { p50: Math.max(...timings.map((t) => f(t).p50Ms)), p99: Math.max(...timings.map((t) => f(t).p99Ms)), max: Math.max(...timings.map((t) => f(t).maxMs)), count: timings.reduce((n, t) => n + f(t).count, 0) };
}

/** The worst server's event-loop delay, steps and group-commit times. */
function worst(timings: Timings[]): Record<'eventLoopDelayMaxMs' | 'eventLoopDelayP99Ms' | 'stepMaxMs' | 'stepCpuMaxMs' | 'stepCpuP99Ms' | 'journalSyncP50Ms' | 'journalSyncP99Ms' | 'journalSyncMaxMs', number> {
  const most = (f: (t: Timings) => number) => Math.max(...timings.map(f));
  return {
    eventLoopDelayMaxMs: most((t) => t.eventLoopDelay.maxMs),
    eventLoopDelayP99Ms: most((t) => t.eventLoopDelay.p99Ms),
    stepMaxMs: most((t) => t.step.maxMs),
    stepCpuMaxMs: most((t) => t.stepCpu.maxMs),
    stepCpuP99Ms: most((t) => t.stepCpu.p99Ms),
    journalSyncP50Ms: most((t) => t.journalSync.p50Ms),
    journalSyncP99Ms: most((t) => t.journalSync.p99Ms),
    journalSyncMaxMs: most((t) => t.journalSync.maxMs),
  };
}

/** Counters summed over the cluster, CPU time per daemon, the kernel's UDP overflow count. */
interface RetransmissionMark {
  readonly engine: Partial<EngineCounters>;
  readonly cpuMs: readonly number[];
  readonly overflow: number;
}

/** The middle value (the upper of the two middle ones for an even count). */
function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}

/** The processes' CPU time per message they originated, in all, over the measured time (µs). */
function cpuPerMessageUs(runs: readonly { readonly cpuMs: number; readonly originated: number }[]): number {
  const cpuMs = runs.reduce((total, r) => total + r.cpuMs, 0);
  return (cpuMs * 1000) / Math.max(1, runs.reduce((total, r) => total + r.originated, 0));
}

function cpuSince(before: readonly number[], after: readonly number[]): { daemonsCpuMs: number; busiestDaemonCpuMs: number } {
  const used = after.map((ms, i) => (ms >= before[i] ? ms - before[i] : ms));
  return { daemonsCpuMs: used.reduce((a, b) => a + b, 0), busiestDaemonCpuMs: Math.max(...used) };
}

/** The phases, in the order they run (baseline sizes its datagrams from throughput's). */
const phaseNames = ['disk', 'throughput', 'baseline', 'protocol', 'rpcFloor', 'chatState', 'floor', 'latency', 'heal', 'catchUp', 'footprint', 'restart', 'scale'] as const;

function table(r: Record<string, unknown>): string {
  const f = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
  const k = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
  const lat = (x: Record<string, number>) => `p50 ${f(x.p50, 2)} ms, p99 ${f(x.p99, 2)} ms, max ${f(x.max, 1)} ms (${x.count} samples)`;
  const max = (xs: number[]) => Math.max(...xs);
  const rows: [string, string][] = [['clients append', r.appendPath === 'bare' ? 'bare: no request ids (--bare)' : "with request ids and doneBelow, as the client library does by default (--bare: without)"]];
  const d = r.disk as { fdatasync: Record<string, number> } | undefined;
  if (d) rows.push(['disk: 200-byte append + fdatasync', lat(d.fdatasync)]);
  const loop = (x: Record<string, unknown>) =>
    `event loop delay p99 ${f(x.eventLoopDelayP99Ms as number)} ms, max ${f(x.eventLoopDelayMaxMs as number)} ms; longest step ${f(x.stepMaxMs as number)} ms (CPU: p99 ${f(x.stepCpuP99Ms as number)} ms, max ${f(x.stepCpuMaxMs as number)} ms); group commit p50 ${f(x.journalSyncP50Ms as number, 2)} ms, p99 ${f(x.journalSyncP99Ms as number, 2)} ms${x.journalSyncMaxMs === undefined ? '' : `, max ${f(x.journalSyncMaxMs as number, 1)} ms`} (worst server)`;
  const b = r.baseline as Record<string, number> | undefined;
  if (b) rows.push(['baseline: raw UDP fan-out', `${k(b.datagramsReceivedPerS)} datagrams/s of ${b.datagramBytes} B = ${k(b.messageEquivalentPerS)} messages/s to all five at Chorus's batching`]);
  const t = r.throughput as Record<string, number> | undefined;
  if (t) {
    const share = b ? ` = ${f((100 * t.stableAtAllFivePerS) / b.messageEquivalentPerS)}% of the baseline` : '';
    rows.push(
      ['throughput: confirmed', `${k(t.confirmedPerS)} appends/s (${t.failures} refused)`],
      ['throughput: stable at all five', `${k(t.stableAtAllFivePerS)} messages/s${share}`],
      ['throughput: datagrams', `${k(t.datagramsPerS)}/s, ${k(t.avgDatagramBytes)} B average, ${f(t.messagesPerDataDatagram)} messages per data datagram, ${k(t.fsyncsPerS)} fsyncs/s, ${f(t.reappliedPerMessage, 2)} chat operations re-applied per message`],
      ['throughput: lost to buffer overflow', `${t.datagramsLostToOverflow} datagrams`],
      ['throughput: CPU per append', `daemons ${f(t.daemonsCpuPerAppendUs)} µs in all (${k(t.daemonsCpuMs)} ms over the phase); the load client ${f(t.loadClientCpuPerAppendUs)} µs (${k(t.loadClientCpuMs)} ms), on the same cores`],
      ['throughput: daemons', loop(t)],
    );
  }
  const p = r.protocol as Record<string, Record<string, number>> | undefined;
  if (p) {
    const protocolRow = (x: Record<string, number>) =>
      `${k(x.deliveredAtAllFivePerS)} messages/s delivered at all five (${k(x.groupCommitsPerS)} group commits/s; CPU ${f(x.cpuPerMessageUs)} µs per message in all; event loop delay max ${f(x.eventLoopDelayMaxMs)} ms)`;
    rows.push(['protocol only, fsync on', protocolRow(p.fsyncOn)], ['protocol only, fsync off', protocolRow(p.fsyncOff)]);
    const a = p.atRate as unknown as Record<string, Record<string, number>> | undefined;
    if (a) {
      rows.push(
        [`protocol only at ${k(a.rate as unknown as number)}/s: -> stable here`, lat(a.stableHere)],
        ['protocol only: -> stable at all five', lat(a.stableAtAllFive)],
        ['protocol only: daemons', `${loop(a)}; CPU ${f(a.cpuPerMessageUs as unknown as number)} µs per message in all`],
      );
    }
  }
  const rf = r.rpcFloor as Record<string, number> | undefined;
  if (rf) rows.push(['RPC floor: answering only', `${k(rf.appendsPerS)} appends/s answered by 5 processes that do nothing else (no broadcast, journal, chat or pushes); CPU per append: the servers ${f(rf.serversCpuPerAppendUs)} µs in all, the load client ${f(rf.clientCpuPerAppendUs)} µs`]);
  if (rf && p) {
    // An append costs at least what both floors spend on one (the load client's share included), and the cores are all there is.
    const floorCpuUs = rf.serversCpuPerAppendUs + rf.clientCpuPerAppendUs + p.fsyncOn.cpuPerMessageUs;
    const ceiling = (cores * 1e6) / floorCpuUs;
    const share = t ? `; throughput is ${f((100 * t.stableAtAllFivePerS) / ceiling)}% of it` : '';
    rows.push(['chat path ceiling', `${k(ceiling)} appends/s: ${cores} cores over ${f(floorCpuUs)} µs of CPU per append (the RPC floor's and the protocol's, fsync on), with no chat work${share}`]);
  }
  const cs = r.chatState as { messages: number; runs: number; cpuPerMessageUs: number } | undefined;
  if (cs) rows.push(['chat state alone (one daemon)', `${f(cs.cpuPerMessageUs, 2)} µs of CPU per message (${k(cs.messages)} appends in batches of 50, history files on disk, no network, journal or RPC; median of ${cs.runs} run${cs.runs === 1 ? '' : 's'}); every daemon spends it on every message`]);
  const fl = r.floor as { rate: number; runs: number; stableHere: { p50: number; p99: number }; groupCommitP50Ms: number; cpuPerMessageUs: number } | undefined;
  if (fl) rows.push([`floor at ${k(fl.rate)}/s: -> stable here`, `p50 ${f(fl.stableHere.p50, 2)} ms, p99 ${f(fl.stableHere.p99, 2)} ms (worst process, median of ${fl.runs} run${fl.runs === 1 ? '' : 's'}; group commit p50 ${f(fl.groupCommitP50Ms, 2)} ms; CPU ${f(fl.cpuPerMessageUs)} µs per message in all)`]);
  const l = r.latency as Record<string, Record<string, number>> | undefined;
  const againstFloor = (x: Record<string, number>) => (fl ? `; ${f(x.p50 / fl.stableHere.p50, 2)}x the floor's p50, ${f(x.p99 / fl.stableHere.p99, 2)}x its p99` : '');
  if (l) {
    rows.push(
      ['latency at 1,000/s: append -> ack', `${lat(l.ack)}${fl ? `; p99 ${f(l.ack.p99 / fl.stableHere.p99, 2)}x the floor's p99` : ''}`],
      ['latency: append -> seen on another server', lat(l.seenElsewhere)],
      ['latency: submitted -> confirmed (worst server)', lat(l.confirmedAtServer)],
      ['latency: submitted -> stable here (worst server)', `${lat(l.stableHere)}${againstFloor(l.stableHere)}`],
      ['latency: submitted -> stable at all five (worst)', lat(l.stableAtAllFive)],
      ['latency: daemons', `${loop(l)}; ${f(l.reappliedPerMessage as unknown as number, 2)} chat operations re-applied per message; CPU ${f(l.daemonsCpuPerAppendUs as unknown as number)} µs per append in all`],
      ['latency: the load client', `event loop delay p99 ${f(l.clientEventLoopDelay.p99)} ms, max ${f(l.clientEventLoopDelay.max)} ms (in its append -> ack and -> seen figures)`],
    );
  }
  const h = r.heal as Record<string, number> | undefined;
  const resent = (x: Record<string, number>) =>
    `${k(x.retransmitted)} retransmitted (${f(x.retransmittedPerDelivery, 2)} per message delivered) for ${k(x.nacksSent)} NACKs (${k(x.nacksResent)} sent again after a stall); received ${k(x.duplicates)} duplicates, ${k(x.beyondWindow)} beyond the window; ${k(x.datagramsLostToOverflow)} datagrams lost to buffer overflow`;
  if (h) {
    rows.push(['heal: {1,2}|{3,4,5}', `${k(h.perSide)} appends per side converged ${k(h.convergedMsAfterHeal)} ms after the heal; CPU ${k(h.daemonsCpuMs)} ms in all, ${k(h.busiestDaemonCpuMs)} ms the busiest daemon; ${k(h.reappliedPerServer)} chat operations re-applied per server`]);
    rows.push(['heal: retransmission', resent(h)]);
  }
  const c = r.catchUp as Record<string, number> | undefined;
  if (c) {
    rows.push(['catch-up after a kill', `${k(c.messages)} messages: answering after ${k(c.relaunchAnswersMs)} ms, caught up after ${k(c.caughtUpMs)} ms; CPU ${k(c.daemonsCpuMs)} ms in all, ${k(c.busiestDaemonCpuMs)} ms the busiest daemon`]);
    rows.push(['catch-up: retransmission', resent(c)]);
  }
  const rs = r.restart as Record<string, number> | undefined;
  if (rs) rows.push(['restart', `log files with ${k(rs.messages)} messages: answering after ${k(rs.answersMs)} ms`]);
  const fp = r.footprint as { loaded: { messages: number; rssMiB: number[]; diskMiB: number[] }; quiesced: { messages: number; rssMiB: number[]; diskMiB: number[] }; retained: number[] } | undefined;
  if (fp) {
    rows.push(
      ['footprint loaded', `${k(fp.loaded.messages)} messages: RSS up to ${f(max(fp.loaded.rssMiB))} MiB, disk up to ${f(max(fp.loaded.diskMiB))} MiB per daemon`],
      ['footprint quiesced', `RSS up to ${f(max(fp.quiesced.rssMiB))} MiB, disk up to ${f(max(fp.quiesced.diskMiB))} MiB per daemon, messages retained ${fp.retained.join('/')}`],
    );
  }
  const sc = r.scale as { points: { messages: number; rssMiB: number[]; diskBytes: number[] }[]; restarts: { messages: number; answersMs: number }[]; rssGrowthBytesPerMessage: number; diskBytesPerMessage: number; historyBytesPerMessage: number } | undefined;
  if (sc) {
    for (const point of sc.points) rows.push([`scale: ${k(point.messages)} messages`, `RSS up to ${f(max(point.rssMiB))} MiB, disk up to ${f(max(point.diskBytes) / 2 ** 20)} MiB per daemon (quiet)`]);
    rows.push(['scale: per further message', `RSS ${f(sc.rssGrowthBytesPerMessage)} bytes; disk ${f(sc.diskBytesPerMessage)} bytes per message in all, history segments ${f(sc.historyBytesPerMessage)} (200-byte texts)`]);
    for (const rs of sc.restarts) rows.push([`scale: restart at ${k(rs.messages)} messages`, `answering after ${k(rs.answersMs)} ms`]);
  }
  const width = Math.max(...rows.map((row) => row[0].length));
  return rows.map(([a, v]) => `${a.padEnd(width)}  ${v}`).join('\n');
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('tools/bench')
    .usage('$0 [--quick] [--out <file>]\n\nStart a five-daemon cluster on free ports in a temporary directory and measure it.')
    .option('quick', { type: 'boolean', default: process.env.QUICK === '1', describe: 'a short run (also QUICK=1), for smoke tests' })
    .option('out', { type: 'string', describe: 'also write the figures as JSON to this file' })
    .option('keep', { type: 'boolean', default: false, describe: 'keep the temporary directory' })
    .option('only', { type: 'array', string: true, choices: phaseNames, describe: 'run only these phases (e.g. --only throughput to profile it)' })
    .option('bare', { type: 'boolean', default: false, describe: 'clients append without request ids (the path measured before December 2026) instead of as the client library does by default' })
    .option('history', { type: 'number', describe: `messages the scale phase loads the cluster with (default ${fullScale.history.toLocaleString('en-US')}, quick ${quickScale.history.toLocaleString('en-US')})` })
    .strict()
    .help()
    .alias('help', 'h')
    .fail(usageFailure('tools/bench'))
    .parseAsync();
  const root = mkdtempSync(join(tmpdir(), 'chorus-bench-'));
  const ports = await freePorts(10);
  const configFile = join(root, 'clusterconfig');
  writeFileSync(configFile, Array.from({ length: 5 }, (_, i) => `127.0.0.1 ${ports[2 * i]} ${ports[2 * i + 1]}\n`).join(''));
  const cluster = new LocalCluster(loadClusterConfig(configFile), { dataRoot: join(root, 'data'), configFile }, ['--snapshot-interval-ms', '2000', '--log-level', 'warn', '--max-requests-per-second', '1000000']);
  const say = (line: string) => process.stderr.write(`${line}\n`);
  if (argv.history !== undefined && !(Number.isSafeInteger(argv.history) && argv.history >= 1000)) throw new Error(`--history: a whole number of at least 1000, not ${argv.history}`);
  const scale = argv.quick ? quickScale : fullScale;
  const bench = new Bench(cluster, { ...scale, history: argv.history ?? scale.history }, say, argv.bare ? 'bare' : 'session');
  say(`bench cluster: ${root} (removed at the end${argv.keep ? ' unless --keep' : ''}; Ctrl-C stops its daemons)`);
  let cleaning: Promise<void> | undefined;
  const cleanUp = () =>
    (cleaning ??= (async () => {
      bench.killHelpers();
      bench.closeAppenders();
      bench.closeControl();
      await cluster.stop();
      if (!argv.keep) rmSync(root, { recursive: true, force: true });
    })());
  const interrupted = (signal: NodeJS.Signals) => {
    say(`tools/bench: ${signal}: stopping the bench's daemons`);
    void cleanUp().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    await cluster.start();
    await bench.converge(10_000);
    await sleep(500);
    for (const phase of phaseNames) if (!argv.only || argv.only.includes(phase)) await bench[phase]();
  } finally {
    await cleanUp();
  }
  const results = { quick: argv.quick, ...bench.results };
  console.log(table(bench.results));
  if (argv.out) writeFileSync(resolve(argv.out), `${JSON.stringify(results, null, 2)}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`tools/bench: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
