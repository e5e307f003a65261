/**
 * Smoke test of the benchmark suite: QUICK=1 runs every phase on its own
 * cluster and reports every figure. Speed is never asserted here (shared,
 * noisy machines); `make bench` prints the real figures.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

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
      for (const section of ['disk', 'throughput', 'baseline', 'protocol', 'latency', 'heal', 'catchUp', 'footprint', 'restart']) expect(r, section).to.have.property(section);
      expect(r.throughput.confirmedPerS).to.be.a('number').greaterThan(0);
      expect(r.throughput.datagramsLostToOverflow).to.be.a('number');
      expect((r.disk.fdatasync as { count: number }).count).to.equal(500);
      // The daemons time themselves: their event loops and group commits were measured during the phase.
      expect(r.throughput.eventLoopDelayMaxMs).to.be.a('number').greaterThan(0);
      expect(r.throughput.journalSyncP50Ms).to.be.a('number').greaterThan(0);
      expect(r.latency.journalSyncP99Ms).to.be.a('number').greaterThan(0);
      expect((r.latency.ack as { count: number }).count).to.be.greaterThan(0);
      // Protocol only: five processes broadcasting themselves delivered messages at all five, with fsync and without.
      const protocol = r.protocol as Record<string, Record<string, number>>;
      for (const fsync of ['fsyncOn', 'fsyncOff']) expect(protocol[fsync].deliveredAtAllFivePerS, fsync).to.be.a('number').greaterThan(0);
      expect(protocol.fsyncOn.groupCommitsPerS).to.be.greaterThan(0);
      expect(r.heal.convergedMsAfterHeal).to.be.a('number');
      expect(r.catchUp.caughtUpMs).to.be.a('number');
      expect((r.footprint.retained as number[]).every((n) => n === 0)).to.equal(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
