/**
 * What a daemon measures of itself, for the benchmark and tools/cluster
 * status: how long its event loop was blocked (so a step that stalls shows),
 * and how long a group commit (write and fdatasync) took. Histograms since
 * the last reset, in milliseconds.
 */
import { createHistogram, monitorEventLoopDelay, type IntervalHistogram, type RecordableHistogram } from 'node:perf_hooks';

export interface Percentiles {
  readonly count: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

export interface Timings {
  /** Delay of the event loop (sampled every 10 ms): a step or snapshot that blocks it shows in the maximum. */
  readonly eventLoopDelay: Percentiles;
  /** From asking for a group commit to its records being durable. */
  readonly journalSync: Percentiles;
}

export class DaemonTimings {
  private readonly loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  private readonly sync: RecordableHistogram = createHistogram();

  constructor() {
    this.loop.enable();
  }

  /** Time one group commit: call the result once it is durable. */
  syncStarted(): () => void {
    const start = process.hrtime.bigint();
    return () => this.sync.record(process.hrtime.bigint() - start || 1n);
  }

  read(reset: boolean): Timings {
    const timings = { eventLoopDelay: percentiles(this.loop), journalSync: percentiles(this.sync) };
    if (reset) {
      this.loop.reset();
      this.sync.reset();
    }
    return timings;
  }

  stop(): void {
    this.loop.disable();
  }
}

function percentiles(h: IntervalHistogram | RecordableHistogram): Percentiles {
  const ms = (ns: number) => ns / 1e6;
  if (h.count === 0) return { count: 0, p50Ms: 0, p99Ms: 0, maxMs: 0 };
  return { count: h.count, p50Ms: ms(h.percentile(50)), p99Ms: ms(h.percentile(99)), maxMs: ms(h.max) };
}
