/** What a daemon measures of itself for the benchmark and `tools/cluster status`. */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { DaemonTimings, stepCpuSampling, type Timings } from '../src/daemon/timings.js';

describe('daemon timings', () => {
  it('times own operations to confirmed, stable here and stable everywhere, each once', () => {
    const timings = new DaemonTimings();
    try {
      timings.confirmed(5, 100, 103);
      timings.confirmed(7, 101, 104);
      timings.observe(5, 0, 110);
      timings.observe(7, 7, 120);
      timings.observe(7, 7, 130);
      const t = timings.read(false);
      expect(t.confirmed.count).to.equal(2);
      expect(t.stableHere.count).to.equal(2);
      expect(t.stableEverywhere.count).to.equal(2);
      expect(t.stableHere.maxMs).to.be.closeTo(19, 0.1);
      expect(t.stableEverywhere.maxMs).to.be.closeTo(20, 0.1);
    } finally {
      timings.stop();
    }
  });

  it('times each group commit once, from asked to durable, in milliseconds', () => {
    const timings = new DaemonTimings();
    try {
      const durable = timings.syncStarted();
      const quick = timings.syncStarted();
      quick();
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      durable();
      const t = timings.read(false).journalSync;
      expect(t.count).to.equal(2);
      expect(t.maxMs).to.be.at.least(19).and.below(10_000);
      expect(t.p50Ms).to.be.below(t.maxMs);
    } finally {
      timings.stop();
    }
  });

  it('times steps in wall time, and one in stepCpuSampling in CPU time: waiting (as for fdatasync) shows in the first only', () => {
    // In a process of its own: a step's CPU time is the whole process's, and in the test runner's the
    // threads earlier tests left busy (the compiler, the garbage collector) once added 33 ms to a wait.
    const script = `
      import { DaemonTimings, stepCpuSampling } from ${JSON.stringify(new URL('../src/daemon/timings.js', import.meta.url).href)};
      const timings = new DaemonTimings();
      timings.step(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30));
      for (let i = 1; i < stepCpuSampling; i++) timings.step(() => undefined);
      const busyUntil = performance.now() + 30;
      timings.step(() => {
        while (performance.now() < busyUntil);
      });
      process.stdout.write(JSON.stringify(timings.read(false)));
      timings.stop();`;
    const t = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 })) as Timings;
    expect(t.step.count).to.equal(stepCpuSampling + 1);
    expect(t.step.maxMs).to.be.at.least(29);
    expect(t.stepCpu.count, 'the first and the last step').to.equal(2);
    expect(t.stepCpu.p50Ms, 'the waiting step').to.be.below(15);
    expect(t.stepCpu.maxMs, 'the busy step').to.be.above(5);
  });

  it("measures the event loop's delay beyond its sampling interval: idle shows none, a blocked loop its block", async () => {
    const timings = new DaemonTimings();
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const idle = timings.read(true).eventLoopDelay;
      expect(idle.count).to.be.greaterThan(3);
      expect(idle.p50Ms, 'an idle loop').to.be.below(8);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const blockedUntil = performance.now() + 60;
      while (performance.now() < blockedUntil);
      await new Promise((resolve) => setTimeout(resolve, 30));
      expect(timings.read(false).eventLoopDelay.maxMs, 'a 60 ms block').to.be.at.least(45);
    } finally {
      timings.stop();
    }
  });

  it('after a reset, operations submitted before it are not timed', () => {
    const timings = new DaemonTimings();
    try {
      timings.confirmed(5, 0, 3);
      timings.read(true);
      timings.confirmed(9, 2000, 2003);
      timings.observe(9, 9, 2010);
      const t = timings.read(true);
      expect(t.stableHere.count).to.equal(1);
      expect(t.stableEverywhere.count).to.equal(1);
      expect(t.stableEverywhere.maxMs).to.be.closeTo(10, 0.1);
    } finally {
      timings.stop();
    }
  });
});
