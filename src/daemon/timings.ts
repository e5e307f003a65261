/**
 * What a daemon measures of itself, for the benchmark and tools/cluster
 * status: how long its event loop was blocked (so a step that stalls shows),
 * how long each step took (wall and CPU time, to tell a long step from one
 * that waited for the disk or a core), how long a group commit (write and
 * fdatasync) took, and how long its own
 * operations took from submission to confirmed, to stable here and to known
 * stable at every server. Histograms since the last reset, in milliseconds;
 * measured where it happens, so nobody has to poll for it.
 */
import { createHistogram, monitorEventLoopDelay, performance, type IntervalHistogram, type RecordableHistogram } from 'node:perf_hooks';

export interface Percentiles {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface Timings {
  /** Delay of the event loop (sampled every 10 ms), beyond the sampling interval: a step or snapshot that blocks it shows in the maximum; an idle loop shows 0. */
  readonly eventLoopDelay: Percentiles;
  /** From asking for a group commit to its records being durable. */
  readonly journalSync: Percentiles;
  /** One step of the node (or timer tick), wall time: what it held the event loop for, fdatasync and time off the CPU included. */
  readonly step: Percentiles;
  /** One step in stepCpuSampling in CPU time (user and system, of the whole process, so the GC's helper threads count too): their work, without waiting for the disk or for a core. */
  readonly stepCpu: Percentiles;
  /** An own operation, from submitted to confirmed (durable here, so it will reach every server). */
  readonly confirmed: Percentiles;
  /** From submitted to stable here (final; applied to the stable chat state). */
  readonly stableHere: Percentiles;
  /** From submitted to this server knowing it stable at every server (the stable-everywhere point passed it). */
  readonly stableEverywhere: Percentiles;
}

/** An own operation confirmed and not yet through both stability points. */
interface Submitted {
  readonly ts: number;
  readonly at: number;
}

/** The event loop's delay is sampled every this many ms; the histogram holds whole intervals, this included. */
const loopResolutionMs = 10;
/**
 * Reading a step's CPU time costs a system call, which at a thousand small
 * steps a second was a tenth of what the steps cost: one step in this many
 * is timed in CPU, which is as good a sample of the distribution.
 */
export const stepCpuSampling = 16;

export class DaemonTimings {
  private readonly loop: IntervalHistogram = monitorEventLoopDelay({ resolution: loopResolutionMs });
  private readonly sync: RecordableHistogram = createHistogram();
  private readonly stepWall: RecordableHistogram = createHistogram();
  private readonly stepCpu: RecordableHistogram = createHistogram();
  private readonly confirm: RecordableHistogram = createHistogram();
  private readonly here: RecordableHistogram = createHistogram();
  private readonly everywhere: RecordableHistogram = createHistogram();
  /** Own operations in ts order (a server's own timestamps only grow), waiting for each stability point. */
  private untilStableHere: Submitted[] = [];
  private untilStableEverywhere: Submitted[] = [];
  private steps = 0;

  constructor() {
    this.loop.enable();
  }

  /** Time one group commit: call the result once it is durable. */
  syncStarted(): () => void {
    const start = performance.now();
    return () => record(this.sync, performance.now() - start);
  }

  /** Run one step, timed in wall time (and one in stepCpuSampling in CPU time). */
  step(run: () => void): void {
    const wallStart = performance.now();
    const cpuStart = this.steps++ % stepCpuSampling === 0 ? process.cpuUsage() : undefined;
    try {
      run();
    } finally {
      record(this.stepWall, performance.now() - wallStart);
      if (cpuStart) {
        const cpu = process.cpuUsage(cpuStart);
        record(this.stepCpu, (cpu.user + cpu.system) / 1000);
      }
    }
  }

  /** An own operation submitted at `submittedAt` was confirmed now (times in ms of one clock). */
  confirmed(ts: number, submittedAt: number, now: number): void {
    record(this.confirm, now - submittedAt);
    const submitted = { ts, at: submittedAt };
    this.untilStableHere.push(submitted);
    this.untilStableEverywhere.push(submitted);
  }

  /** The stability points now: record the own operations they passed. */
  observe(stableTs: number, stableEverywhereTs: number, now: number): void {
    this.untilStableHere = passed(this.untilStableHere, stableTs, now, this.here);
    this.untilStableEverywhere = passed(this.untilStableEverywhere, stableEverywhereTs, now, this.everywhere);
  }

  read(reset: boolean): Timings {
    const timings = {
      eventLoopDelay: loopDelay(this.loop),
      journalSync: percentiles(this.sync),
      step: percentiles(this.stepWall),
      stepCpu: percentiles(this.stepCpu),
      confirmed: percentiles(this.confirm),
      stableHere: percentiles(this.here),
      stableEverywhere: percentiles(this.everywhere),
    };
    if (reset) {
      for (const h of [this.loop, this.sync, this.stepWall, this.stepCpu, this.confirm, this.here, this.everywhere]) h.reset();
      // What was submitted before the reset is not timed after it (a bench phase would count the one before's tail).
      this.untilStableHere = [];
      this.untilStableEverywhere = [];
    }
    return timings;
  }

  stop(): void {
    this.loop.disable();
  }
}

/**
 * Every histogram gets a number, never a BigInt: Node's record() is one
 * function whose optimised code takes numbers only, and each BigInt threw it
 * (and the callers it was inlined into) back to the interpreter, to be
 * compiled again (at 1,000 appends/s about a third of what V8's optimising
 * compiler did in the daemons, the group commit's timing alone).
 */
function record(h: RecordableHistogram, ms: number): void {
  h.record(Math.max(1, Math.round(ms * 1e6)));
}

/** Record the waiting operations with ts <= point; the rest wait on. */
function passed(waiting: Submitted[], point: number, now: number, h: RecordableHistogram): Submitted[] {
  let i = 0;
  while (i < waiting.length && waiting[i].ts <= point) record(h, now - waiting[i++].at);
  return i === 0 ? waiting : waiting.slice(i);
}

/** The loop's delays beyond the sampling interval (monitorEventLoopDelay records the whole interval between samples). */
export function loopDelay(h: IntervalHistogram, resolutionMs = loopResolutionMs): Percentiles {
  const { count, p50Ms, p99Ms, maxMs } = percentiles(h);
  const beyond = (ms: number) => Math.max(0, ms - resolutionMs);
  return { count, p50Ms: beyond(p50Ms), p99Ms: beyond(p99Ms), maxMs: beyond(maxMs) };
}

function percentiles(h: IntervalHistogram | RecordableHistogram): Percentiles {
  const ms = (ns: number) => ns / 1e6;
  if (h.count === 0) return { count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 };
  return { count: h.count, p50Ms: ms(h.percentile(50)), p99Ms: ms(h.percentile(99)), maxMs: ms(h.max) };
}
