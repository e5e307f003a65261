/**
 * The journal's fdatasync, on a thread of its own, with the event loop
 * waiting for it a short while.
 *
 * On a sound disk an fdatasync takes well under a millisecond: the event loop
 * waits for it (as if it ran there), so the datagrams and requests that arrive
 * meanwhile pile up and are read in one go, one step for all of them. On a
 * slow disk the wait ends after `blockMs` and the event loop goes on, so
 * heartbeats, control and reads are answered while the sync finishes on its
 * thread; `done` then runs from the event loop. (On the thread pool alone,
 * every sync returned to the event loop, which woke for each datagram while
 * it waited: about 20% less chat throughput on two cores.)
 *
 * One sync at a time; more are queued and run in the order asked for. The
 * thread (syncWorker.ts) and this side share a few integers (Atomics): the
 * request, its result, and whether this side stopped waiting (then the
 * thread also posts a message, to wake the event loop).
 */
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

export class SyncThread {
  private worker: Worker | undefined;
  private readonly state = new Int32Array(new SharedArrayBuffer(Object.keys(SyncSlot).length * Int32Array.BYTES_PER_ELEMENT));
  private asked = 0;
  private inFlight: Request | undefined;
  private readonly queue: Request[] = [];

  constructor(private readonly blockMs: number) {}

  /** Make what was written to `file` durable; `done` runs before this returns if that took under blockMs, else later. */
  fdatasync(file: number, done: (error?: Error) => void): void {
    this.queue.push({ file, done });
    if (!this.inFlight) this.next();
  }

  private next(): void {
    while (!this.inFlight && this.queue.length > 0) {
      const request = this.queue.shift()!;
      if (!this.runWaiting(request)) return;
    }
  }

  /** Ask the thread, wait up to blockMs; true if it finished meanwhile (done has run). */
  private runWaiting(request: Request): boolean {
    const { state } = this;
    const worker = this.thread();
    const n = ++this.asked;
    Atomics.store(state, SyncSlot.file, request.file);
    Atomics.store(state, SyncSlot.detached, 0);
    Atomics.store(state, SyncSlot.asked, n);
    Atomics.notify(state, SyncSlot.asked);
    Atomics.wait(state, SyncSlot.finished, n - 1, this.blockMs);
    if (Atomics.load(state, SyncSlot.finished) !== n) {
      Atomics.store(state, SyncSlot.detached, n);
      // It may have finished just before the thread could see that nobody waits any more.
      if (Atomics.load(state, SyncSlot.finished) !== n) {
        this.inFlight = request;
        worker.ref();
        return false;
      }
    }
    request.done(this.error(request.file));
    return true;
  }

  private finishedLater(n: number): void {
    const request = this.inFlight;
    if (!request || n !== this.asked) return; // already handled on the waiting side
    this.inFlight = undefined;
    this.worker?.unref();
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
