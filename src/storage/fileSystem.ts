/**
 * The file operations the log files need, and nothing more: the daemon
 * runs them on the real disk (nodeFileSystem below), the simulator on a
 * simulated one that loses what was not made durable when a server crashes
 * (src/sim/simFileSystem.ts), so torn writes and lost renames reach the
 * real recovery code.
 *
 * Durability, as POSIX gives it: bytes written reach the disk only when their
 * file is synced; a new name, a rename or an unlink only when the directory
 * is synced. The operations that wait for the disk while the server runs
 * have forms that may finish later (`fdatasync`, `syncInBackground`,
 * `syncDirInBackground`): `done` runs once what they cover is durable. On the
 * real disk they run off the event loop, so that a slow disk never stops it:
 * heartbeats, status, control and reads go on while a sync waits.
 */
import { close, closeSync, existsSync, fsync, fsyncSync, ftruncateSync, mkdirSync, openSync, open, readdirSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ChorusError } from '../errors.js';
import { SyncThread } from './syncThread.js';

export type FileHandle = number;

/** Runs `ready` once something is durable (at once, or later), or with the error. */
export type DurableWhen = (ready: (error?: Error) => void) => void;

export interface FileSystem {
  exists(path: string): boolean;
  readText(path: string): string;
  /** Up to `length` bytes from `offset` (fewer at the end of the file). */
  readRange(path: string, offset: number, length: number): Buffer;
  /** The names in a directory. */
  list(dir: string): string[];
  /** Bytes in a file (0 if it does not exist). */
  size(path: string): number;
  /** Create a directory and its parents. */
  makeDir(dir: string): void;
  /** Open for appending (created if missing), or for writing from empty ('truncate'). */
  open(path: string, mode: 'append' | 'truncate'): FileHandle;
  /** Append bytes; returns how many were written. */
  write(file: FileHandle, data: Uint8Array): number;
  /** Make the file's content durable now. */
  fsync(file: FileHandle): void;
  /** Make what was written so far durable, then call done (before this returns, or later); an error means it is not. Calls finish in the order made. */
  fdatasync(file: FileHandle, done: (error?: Error) => void): void;
  /** As fdatasync, but never on the caller's thread (a snapshot's tens of MiB); the file stays open until done runs. */
  syncInBackground(file: FileHandle, done: (error?: Error) => void): void;
  truncate(file: FileHandle, length: number): void;
  close(file: FileHandle): void;
  rename(from: string, to: string): void;
  unlink(path: string): void;
  /** Make the directory's names (creations, renames, unlinks) durable. */
  syncDir(dir: string): void;
  /** As syncDir, but never on the caller's thread: done runs once the names made before the call are durable. */
  syncDirInBackground(dir: string, done: (error?: Error) => void): void;
  /** Take the directory for this process; a ChorusError says who holds it. */
  lock(dir: string): void;
  unlock(dir: string): void;
}

const lockedDirs = new Set<string>();

/**
 * The journal's fdatasync (syncThread.ts): on its own thread, the event loop
 * waiting for each at most 10 ms, until 50 in a row took under 20 ms; then on
 * the event loop until one takes 200 ms. (A sound disk's sync on two busy
 * cores, waiting for a core, can take 100 ms now and then: with 100 ms and
 * 5 ms the syncs of the bench's flood moved to the thread and stayed there.)
 */
export const journalSyncs = new SyncThread({ slowMs: 200, blockMs: 10, fastMs: 20, fastRun: 50 });

/** The real disk, through node:fs: the syncs off the event loop (the journal's on a thread of its own, the others on the thread pool), everything else synchronous. */
export const nodeFileSystem: FileSystem = {
  exists: (path) => existsSync(path),
  readText: (path) => readFileSync(path, 'utf8'),
  readRange: (path, offset, length) => {
    const file = openSync(path, 'r');
    try {
      const buffer = Buffer.alloc(length);
      return buffer.subarray(0, readSync(file, buffer, 0, length, offset));
    } finally {
      closeSync(file);
    }
  },
  list: (dir) => readdirSync(dir),
  size: (path) => (existsSync(path) ? statSync(path).size : 0),
  makeDir: (dir) => void mkdirSync(dir, { recursive: true }),
  open: (path, mode) => openSync(path, mode === 'append' ? 'a' : 'w'),
  write: (file, data) => writeSync(file, data),
  fsync: (file) => fsyncSync(file),
  fdatasync: (file, done) => journalSyncs.fdatasync(file, done),
  syncInBackground: (file, done) => fsync(file, (err) => done(err ?? undefined)),
  truncate: (file, length) => ftruncateSync(file, length),
  close: (file) => closeSync(file),
  rename: (from, to) => renameSync(from, to),
  unlink: (path) => unlinkSync(path),
  syncDir: (dir) => {
    const file = openSync(dir, 'r');
    try {
      fsyncSync(file);
    } finally {
      closeSync(file);
    }
  },
  syncDirInBackground: (dir, done) =>
    open(dir, 'r', (openError, file) => {
      if (openError) return done(openError);
      fsync(file, (syncError) => close(file, (closeError) => done(syncError ?? closeError ?? undefined)));
    }),
  lock: lockDir,
  unlock: unlockDir,
};

/** One daemon per data directory: a second one would corrupt the journal. The LOCK file holds the owner's pid. */
function lockDir(dir: string): void {
  const file = join(dir, 'LOCK');
  if (lockedDirs.has(dir)) throw new ChorusError('STORAGE_FAILED', `${dir} is already in use by a daemon in this process`);
  if (existsSync(file)) {
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
      throw new ChorusError('STORAGE_FAILED', `${dir} is in use by another daemon (pid ${pid}); stop it first`);
    }
  }
  writeFileSync(file, `${process.pid}\n`);
  lockedDirs.add(dir);
}

function unlockDir(dir: string): void {
  lockedDirs.delete(dir);
  try {
    unlinkSync(join(dir, 'LOCK'));
  } catch {
    // Already gone: nothing to release.
  }
}

/**
 * Whether a process with this pid runs (signal 0 checks without sending
 * anything; EPERM means it exists but is someone else's). A process that
 * exited stays a zombie until whatever adopted it reaps it, which some init
 * processes do only every second or two: that counts as gone, or every stop
 * and relaunch would wait for the reaper.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return !isZombie(pid);
}

/** On Linux, /proc/<pid>/stat gives the state after the command name: Z for a zombie. Elsewhere nothing is known, so no. */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] === 'Z';
  } catch {
    return false;
  }
}
