/**
 * Time for the RPC layer (the rate limiter, push timers, reads that wait to
 * catch up): the event loop's in the daemon, simulated time in the
 * simulator, so that the same code runs in both.
 */
export interface RpcTimers {
  /** Milliseconds. */
  now(): number;
  /** Run `fn` in `ms`; returns its cancel. */
  after(ms: number, fn: () => void): () => void;
}

/** The event loop's timers; `now` is performance.now() unless a test passes its own. */
export function eventLoopTimers(now: () => number = () => performance.now()): RpcTimers {
  return {
    now,
    after: (ms, fn) => {
      const timer = setTimeout(fn, ms);
      return () => clearTimeout(timer);
    },
  };
}

/** Resolves after `ms` on these timers. */
export function sleep(timers: RpcTimers, ms: number): Promise<void> {
  return new Promise((resolve) => timers.after(ms, resolve));
}
