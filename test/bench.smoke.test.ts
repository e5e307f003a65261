/**
 * Smoke test of the benchmark suite: QUICK=1 runs every phase on its own
 * cluster and reports every figure. Speed is never asserted here (shared,
 * noisy machines); `make bench` prints the real figures.
 */
import { expect } from 'chai';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { processAlive } from '../src/storage/fileSystem.js';

const bench = resolve(dirname(fileURLToPath(import.meta.url)), '../src/bench/bench.js');

describe('benchmark suite (QUICK=1 smoke test)', function () {
  this.timeout(180_000);

  it('runs every phase and reports every figure as a number', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chorus-bench-smoke-'));
    try {
      const out = join(dir, 'bench.json');
      const { stdout } = await promisify(execFile)(process.execPath, [bench, '--quick', '--out', out]);
      expect(stdout).to.match(/throughput: stable at all five/);
      const r = JSON.parse(readFileSync(out, 'utf8')) as Record<string, Record<string, unknown>>;
      for (const section of ['disk', 'throughput', 'baseline', 'protocol', 'rpcFloor', 'chatState', 'floor', 'latency', 'heal', 'catchUp', 'footprint', 'restart', 'scale']) expect(r, section).to.have.property(section);
      expect(r.throughput.confirmedPerS).to.be.a('number').greaterThan(0);
      expect(r.throughput.datagramsLostToOverflow).to.be.a('number');
      // What the flood cost in CPU, the daemons' and the load client's apart.
      expect(r.throughput.daemonsCpuPerAppendUs).to.be.a('number').greaterThan(0);
      expect(r.throughput.loadClientCpuPerAppendUs).to.be.a('number').greaterThan(0);
      // The RPC floor: five processes that only answer were flooded by the client library; with the protocol's CPU it bounds the chat path.
      for (const figure of ['appendsPerS', 'serversCpuPerAppendUs', 'clientCpuPerAppendUs']) expect(r.rpcFloor[figure], figure).to.be.a('number').greaterThan(0);
      expect(stdout).to.match(/chat path ceiling +[\d,]+ appends\/s: \d+ cores over [\d.]+ µs of CPU per append .*; throughput is [\d.]+% of it/);
      // The chat state machine alone: one daemon's CPU per message, in the table too.
      expect((r.chatState as { cpuPerMessageUs: number }).cpuPerMessageUs).to.be.a('number').greaterThan(0);
      expect(stdout).to.match(/chat state alone \(one daemon\) +[\d.]+ µs of CPU per message/);
      // The floor: five processes that only persist, send and acknowledge made their messages stable, and the latency rows are set beside it.
      const floor = r.floor as { stableHere: { p50: number; p99: number } };
      expect(floor.stableHere.p50).to.be.a('number').greaterThan(0);
      expect(floor.stableHere.p99).to.be.at.least(floor.stableHere.p50);
      expect((r.floor as { cpuPerMessageUs: number }).cpuPerMessageUs).to.be.a('number').greaterThan(0);
      expect(stdout).to.match(/stable here \(worst server\) .*x the floor's p50, .*x its p99/);
      expect((r.disk.fdatasync as { count: number }).count).to.equal(500);
      // The daemons time themselves: their event loops and group commits were measured during the phase.
      expect(r.throughput.eventLoopDelayMaxMs).to.be.a('number').at.least(r.throughput.eventLoopDelayP99Ms as number);
      expect(r.throughput.journalSyncP50Ms).to.be.a('number').greaterThan(0);
      expect(r.throughput.stepCpuMaxMs).to.be.a('number').greaterThan(0);
      expect(r.throughput.stepMaxMs).to.be.a('number').greaterThan(0);
      expect(r.latency.journalSyncP99Ms).to.be.a('number').greaterThan(0);
      // The latency phase measures only what it appended after its warm-up: 1,000 a second for the quick run's 2 s.
      expect(r.latency.warmupS).to.equal(0.5);
      expect((r.latency.ack as { count: number }).count).to.equal(2000);
      expect((r.latency.stableHere as { count: number }).count).to.equal(2000);
      // The load client's own event loop is measured too (its delays are in the client-side figures).
      expect((r.latency.clientEventLoopDelay as { max: number }).max).to.be.a('number').at.least(0);
      // CPU per append at the latency phase's rate, and per message of the protocol alone (flooding and at that rate): what the chat path's CPU is set against.
      expect(r.latency.daemonsCpuPerAppendUs).to.be.a('number').greaterThan(0);
      // Protocol only: five processes broadcasting themselves delivered messages at all five, with fsync and without.
      const protocol = r.protocol as Record<string, Record<string, number>>;
      for (const fsync of ['fsyncOn', 'fsyncOff']) expect(protocol[fsync].deliveredAtAllFivePerS, fsync).to.be.a('number').greaterThan(0);
      expect(protocol.fsyncOn.groupCommitsPerS).to.be.greaterThan(0);
      expect(protocol.fsyncOn.cpuPerMessageUs).to.be.a('number').greaterThan(0);
      expect((protocol.atRate as unknown as { cpuPerMessageUs: number }).cpuPerMessageUs).to.be.a('number').greaterThan(0);
      expect(stdout).to.match(/protocol only, fsync on .*CPU [\d.]+ µs per message in all/);
      // ... and at a fixed rate timed their own broadcasts to stable here and at all five.
      const atRate = protocol.atRate as unknown as Record<string, { count: number; p50: number }>;
      for (const figure of ['stableHere', 'stableAtAllFive']) {
        expect(atRate[figure].count, figure).to.be.greaterThan(0);
        expect(atRate[figure].p50, figure).to.be.greaterThan(0);
      }
      expect(r.heal.convergedMsAfterHeal).to.be.a('number');
      // The chat operations re-applied because the other side's messages landed before a server's own: counted, per server.
      expect(r.heal.reappliedPerServer).to.be.finite.and.at.least(0);
      expect(r.catchUp.caughtUpMs).to.be.a('number');
      // What catching up cost in retransmission: the relaunched server lacked every message of the phase.
      expect(r.catchUp.retransmitted).to.be.a('number').at.least(r.catchUp.messages as number);
      expect(r.catchUp.nacksSent).to.be.a('number').greaterThan(0);
      expect(r.heal.nacksResent).to.be.a('number').at.most(r.heal.nacksSent as number);
      expect(r.heal.retransmittedPerDelivery).to.be.a('number').greaterThan(0);
      expect((r.footprint.retained as number[]).every((n) => n === 0)).to.equal(true);
      // At scale: loaded to a tenth, half and all of the history, measured at each, restarted at a tenth and at all of it.
      const scale = r.scale as { points: { messages: number; historyBytes: number[] }[]; restarts: { answersMs: number }[]; rssGrowthBytesPerMessage: number; historyBytesPerMessage: number };
      expect(scale.points.map((p) => p.messages >= 50_000 * [0.1, 0.5, 1][scale.points.indexOf(p)])).to.deep.equal([true, true, true]);
      expect(scale.restarts).to.have.length(2);
      expect(scale.rssGrowthBytesPerMessage).to.be.a('number');
      // The stable history is in the segment files: at least the 200-byte text of each message.
      expect(scale.historyBytesPerMessage).to.be.greaterThan(200 * 0.9);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Ctrl-C stops the bench cluster\'s daemons and removes its directory', async () => {
    const child = spawn(process.execPath, [bench, '--quick', '--only', 'throughput', 'latency'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let root = '';
    let pids: number[] = [];
    try {
      while (!/throughput:/.test(stderr)) {
        if (child.exitCode !== null) throw new Error(`the bench ended early: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      root = /bench cluster: (\S+)/.exec(stderr)![1];
      const dataRoot = join(root, 'data');
      pids = readdirSync(dataRoot)
        .filter((name) => name.endsWith('.pid'))
        .map((name) => Number(readFileSync(join(dataRoot, name), 'utf8')));
      expect(pids).to.have.length(5);
      child.kill('SIGINT');
      // Bounded here, well inside the test's timeout, so that the clean-up below runs even if the bench hangs.
      const hung = new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 60_000).unref());
      expect(await Promise.race([exited, hung]), 'the bench exits').to.equal(130);
      expect(stderr).to.match(/SIGINT: stopping the bench's daemons/);
      expect(pids.filter(processAlive), 'daemons still running').to.deep.equal([]);
      expect(existsSync(root), 'the bench directory is removed').to.equal(false);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      for (const pid of pids.filter(processAlive)) process.kill(pid, 'SIGKILL');
      if (root) rmSync(root, { recursive: true, force: true });
    }
  });
});

