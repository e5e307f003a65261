/**
 * The journal's fdatasync: on the event loop while the disk is sound, on a
 * thread of its own once it is slow.
 *
 * On a sound disk an fdatasync takes well under a millisecond, and the
 * cheapest place for it is the event loop itself: the datagrams and requests
 * that arrive meanwhile pile up and are read in one go, one step for all of
 * them, and no thread has to be woken. (Always on a thread, with the event
 * loop waiting for it, stable-here latency at 1,000 appends/s was 1.2-1.6x as
 * long on two busy cores: each sync waited for the thread, then for the
 * event loop, to get a core. On the thread pool, with no wait, throughput
 * also fell to 0.65-0.85x: every datagram woke the daemon.)
 *
 * Syncs start on the thread, the event loop waiting for each at most
 * `blockMs`, then going on, so that heartbeats, control and reads are
 * answered while the sync finishes there (`done` then runs from the event
 * loop). After `fastRun` syncs in a row under `fastMs` the disk is sound and
 * they move to the event loop; once one takes `slowMs` there, back to the
 * thread. (A disk slow from the start never holds the event loop; one that
 * turns slow holds it for one sync.)
 *
 * One sync at a time; more are queued and run in the order asked for. The
 * thread (syncWorker.ts) and this side share a few integers (Atomics): the
 * request, its result, and whether this side stopped waiting (then the
 * thread also posts a message, to wake the event loop).
 */
import { fdatasyncSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { Worker } from 'node:worker_threads';

/** Indexes into the shared integers. */
export const SyncSlot = {
  /** The number of the last sync asked for. */
  asked: 0,
  /** Its file. */
  file: 1,
  /** The number of the last sync finished. */
  finished: 2,
  /** Its result: 0, or the (negative) errno of the failure. */
  result: 3,
  /** The number of a sync this side stopped waiting for: the thread posts a message when it finishes. */
  detached: 4,
} as const;

interface Request {
  readonly file: number;
  readonly done: (error?: Error) => void;
}

/** What the syncs found out about the disk, for the daemon's log: a sync took slowMs (it was not known slow), or the disk is fast again. */
export type DiskNews = { readonly disk: 'slow'; readonly tookMs: number } | { readonly disk: 'fast again' };

export interface SyncThreadOptions {
  /** A sync on the event loop this long means the disk is slow: later ones go to the thread. */
  readonly slowMs: number;
  /** How long the event loop waits for a sync on the thread before it goes on. */
  readonly blockMs: number;
  /** This many syncs in a row on the thread, each under fastMs, bring them back to the event loop. */
  readonly fastMs: number;
  readonly fastRun: number;
}

export class SyncThread {
  private worker: Worker | undefined;
  private readonly state = new Int32Array(new SharedArrayBuffer(Object.keys(SyncSlot).length * Int32Array.BYTES_PER_ELEMENT));
  private asked = 0;
  private askedAt = 0;
  private inFlight: Request | undefined;
  private readonly queue: Request[] = [];
  /** Syncs run on the thread: at first (the disk is not known to be sound yet), and once it was found slow. */
  private onThread = true;
  /** Syncs in a row on the thread under fastMs. */
  private fastInARow = 0;
  /** The last verdict on the disk was slow. */
  private slowKnown = false;
  private readonly listeners = new Set<(news: DiskNews) => void>();

  constructor(private readonly options: SyncThreadOptions) {}

  /** Syncs run on the thread now (the disk is slow, or not yet known to be sound). */
  get slowDisk(): boolean {
    return this.onThread;
  }

  /** Hear when the disk is found slow, or fast again; returns a function that stops listening. */
  onNews(listener: (news: DiskNews) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Start the thread now, before the first sync asks for it: a daemon does
   * at its start. A thread takes tens of milliseconds to boot (60 ms on an
   * idle core here), which the first sync, and with it the daemon's first
   * status to its peers, would otherwise wait for.
   */
  start(): void {
    this.thread();
  }

  /** Make what was written to `file` durable; `done` runs before this returns (on a sound disk), or later. */
  fdatasync(file: number, done: (error?: Error) => void): void {
    this.queue.push({ file, done });
    if (!this.inFlight) this.next();
  }

  private next(): void {
    while (!this.inFlight && this.queue.length > 0) {
      const request = this.queue.shift()!;
      if (!this.onThread) this.runInline(request);
      else if (!this.runWaiting(request)) return;
    }
  }

  private runInline(request: Request): void {
    const start = performance.now();
    let error: Error | undefined;
    try {
      fdatasyncSync(request.file);
    } catch (err) {
      error = err as Error;
    }
    const tookMs = performance.now() - start;
    if (tookMs >= this.options.slowMs) {
      this.onThread = true;
      this.fastInARow = 0;
      this.foundSlow(tookMs);
    }
    request.done(error);
  }

  /** A sync on the thread took `ms` from asked to finished: enough fast ones in a row bring syncs back. */
  private timed(ms: number): void {
    if (ms >= this.options.slowMs) this.foundSlow(ms);
    this.fastInARow = ms < this.options.fastMs ? this.fastInARow + 1 : 0;
    if (this.fastInARow < this.options.fastRun) return;
    this.onThread = false;
    if (!this.slowKnown) return;
    this.slowKnown = false;
    this.tell({ disk: 'fast again' });
  }

  private foundSlow(tookMs: number): void {
    if (this.slowKnown) return;
    this.slowKnown = true;
    this.tell({ disk: 'slow', tookMs });
  }

  private tell(news: DiskNews): void {
    for (const listener of this.listeners) listener(news);
  }

  /** Ask the thread, wait up to blockMs; true if it finished meanwhile (done has run). */
  private runWaiting(request: Request): boolean {
    const { state } = this;
    const worker = this.thread();
    const n = ++this.asked;
    this.askedAt = performance.now();
    Atomics.store(state, SyncSlot.file, request.file);
    Atomics.store(state, SyncSlot.detached, 0);
    Atomics.store(state, SyncSlot.asked, n);
    Atomics.notify(state, SyncSlot.asked);
    Atomics.wait(state, SyncSlot.finished, n - 1, this.options.blockMs);
    if (Atomics.load(state, SyncSlot.finished) !== n) {
      Atomics.store(state, SyncSlot.detached, n);
      // It may have finished just before the thread could see that nobody waits any more.
      if (Atomics.load(state, SyncSlot.finished) !== n) {
        this.inFlight = request;
        worker.ref();
        return false;
      }
    }
    this.timed(performance.now() - this.askedAt);
    request.done(this.error(request.file));
    return true;
  }

  private finishedLater(n: number): void {
    const request = this.inFlight;
    if (!request || n !== this.asked) return; // already handled on the waiting side
    this.inFlight = undefined;
    this.worker?.unref();
    this.timed(performance.now() - this.askedAt);
    request.done(this.error(request.file));
    this.next();
  }

  private error(file: number): Error | undefined {
    const errno = Atomics.load(this.state, SyncSlot.result);
    if (errno === 0) return undefined;
    const code = safeErrorName(errno);
    return Object.assign(new Error(`${code}: fdatasync of file descriptor ${file} failed`), { code, errno });
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(new URL('./syncWorker.js', import.meta.url), { workerData: this.state });
    worker.on('message', (n: number) => this.finishedLater(n));
    worker.on('error', (err) => this.threadFailed(err));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  /** The thread died (it should not): what waits fails with its error, and the next sync starts a new one. */
  private threadFailed(err: Error): void {
    this.worker = undefined;
    const waiting = [...(this.inFlight ? [this.inFlight] : []), ...this.queue.splice(0)];
    this.inFlight = undefined;
    for (const request of waiting) request.done(err);
  }
}

function safeErrorName(errno: number): string {
  try {
    return getSystemErrorName(errno);
  } catch {
    return `errno ${errno}`;
  }
}
