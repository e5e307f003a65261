/**
 * The thread that runs the journal's fdatasync (see syncThread.ts): it waits
 * for a request in the shared integers, syncs, stores the result, wakes the
 * waiting side, and posts a message if that side stopped waiting.
 */
import { fdatasyncSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { SyncSlot } from './syncThread.js';

const state = workerData as Int32Array;

for (;;) {
  const asked = Atomics.load(state, SyncSlot.asked);
  if (asked === Atomics.load(state, SyncSlot.finished)) {
    Atomics.wait(state, SyncSlot.asked, asked);
    continue;
  }
  let result = 0;
  try {
    fdatasyncSync(Atomics.load(state, SyncSlot.file));
  } catch (err) {
    result = (err as NodeJS.ErrnoException).errno ?? -5;
  }
  Atomics.store(state, SyncSlot.result, result);
  Atomics.store(state, SyncSlot.finished, asked);
  Atomics.notify(state, SyncSlot.finished);
  if (Atomics.load(state, SyncSlot.detached) === asked) parentPort!.postMessage(asked);
}
