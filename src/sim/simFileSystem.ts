/**
 * A simulated disk for one server, under the real log-file code: what a
 * crash keeps is what POSIX promises and no more.
 *
 * - A file's bytes are durable up to what an fsync, or a finished fdatasync,
 *   covered. A crash keeps the durable bytes and a random prefix of the rest
 *   (a torn write).
 * - fdatasync and the other syncs in the background finish `delayMs()`
 *   later in simulated time, in call order.
 * - A name (a creation, a rename, an unlink) is durable once its directory is
 *   synced. A crash keeps the durable names and a random prefix of the later
 *   changes, in order (as a journaling file system commits metadata).
 *
 * Simplifications, none of which the log files rely on: truncation is
 * durable at once; directories exist once made; reads see the current state.
 */
import { dirname, basename } from 'node:path';
import type { FileHandle, FileSystem } from '../storage/fileSystem.js';
import type { Random } from './random.js';

interface Inode {
  data: Buffer;
  length: number;
  durableLength: number;
}

type NameChange = { readonly kind: 'link'; readonly path: string; readonly inode: Inode } | { readonly kind: 'unlink'; readonly path: string } | { readonly kind: 'rename'; readonly from: string; readonly to: string };

interface PendingSync {
  /** Makes what the sync covers durable. */
  readonly finish: () => void;
  readonly at: number;
  readonly done: (error?: Error) => void;
}

function fileError(code: string, path: string): Error {
  return Object.assign(new Error(`${code}: no such file or directory, '${path}'`), { code });
}

export class SimFileSystem implements FileSystem {
  private names = new Map<string, Inode>();
  private durableNames = new Map<string, Inode>();
  private changes: NameChange[] = [];
  private readonly dirs = new Set<string>();
  private readonly handles = new Map<FileHandle, Inode>();
  private nextHandle = 3;
  private syncs: PendingSync[] = [];
  private readonly locks = new Set<string>();

  constructor(
    private readonly now: () => number,
    private readonly delayMs: () => number,
  ) {}

  exists(path: string): boolean {
    return this.names.has(path) || this.dirs.has(path);
  }

  readText(path: string): string {
    const inode = this.inode(path);
    return inode.data.toString('utf8', 0, inode.length);
  }

  readRange(path: string, offset: number, length: number): Buffer {
    const inode = this.inode(path);
    return Buffer.from(inode.data.subarray(Math.min(offset, inode.length), Math.min(offset + length, inode.length)));
  }

  list(dir: string): string[] {
    if (!this.dirs.has(dir)) throw fileError('ENOENT', dir);
    return [...this.names.keys(), ...this.dirs].filter((path) => dirname(path) === dir && path !== dir).map((path) => basename(path));
  }

  size(path: string): number {
    return this.names.get(path)?.length ?? 0;
  }

  makeDir(dir: string): void {
    for (let d = dir; !this.dirs.has(d) && d !== dirname(d); d = dirname(d)) this.dirs.add(d);
  }

  open(path: string, mode: 'append' | 'truncate'): FileHandle {
    if (!this.dirs.has(dirname(path))) throw fileError('ENOENT', path);
    let inode = this.names.get(path);
    if (!inode) {
      inode = { data: Buffer.alloc(256), length: 0, durableLength: 0 };
      this.names.set(path, inode);
      this.changes.push({ kind: 'link', path, inode });
    }
    if (mode === 'truncate') inode.length = inode.durableLength = 0;
    const handle = this.nextHandle++;
    this.handles.set(handle, inode);
    return handle;
  }

  write(file: FileHandle, data: Uint8Array): number {
    const inode = this.handle(file);
    const needed = inode.length + data.length;
    if (needed > inode.data.length) {
      const grown = Buffer.alloc(Math.max(needed, inode.data.length * 2));
      inode.data.copy(grown, 0, 0, inode.length);
      inode.data = grown;
    }
    inode.data.set(data, inode.length);
    inode.length = needed;
    return data.length;
  }

  fsync(file: FileHandle): void {
    const inode = this.handle(file);
    inode.durableLength = inode.length;
  }

  fdatasync(file: FileHandle, done: (error?: Error) => void): void {
    const inode = this.handle(file);
    const upTo = inode.length;
    this.later(() => (inode.durableLength = Math.max(inode.durableLength, Math.min(upTo, inode.length))), done);
  }

  private later(finish: () => void, done: (error?: Error) => void): void {
    const last = this.syncs[this.syncs.length - 1];
    const at = Math.max(this.now(), last?.at ?? 0) + this.delayMs();
    this.syncs.push({ finish, at, done });
  }

  syncInBackground(file: FileHandle, done: (error?: Error) => void): void {
    this.fdatasync(file, done);
  }

  truncate(file: FileHandle, length: number): void {
    const inode = this.handle(file);
    inode.length = Math.min(inode.length, length);
    inode.durableLength = Math.min(inode.durableLength, inode.length);
  }

  close(file: FileHandle): void {
    this.handle(file);
    this.handles.delete(file);
  }

  rename(from: string, to: string): void {
    const inode = this.inode(from);
    this.names.delete(from);
    this.names.set(to, inode);
    this.changes.push({ kind: 'rename', from, to });
  }

  unlink(path: string): void {
    this.inode(path);
    this.names.delete(path);
    this.changes.push({ kind: 'unlink', path });
  }

  syncDir(dir: string): void {
    this.makeNamesDurable(dir, new Set(this.changes));
  }

  /** The changes made before the call are durable once it finishes (not those made meanwhile). */
  syncDirInBackground(dir: string, done: (error?: Error) => void): void {
    const before = new Set(this.changes);
    this.later(() => this.makeNamesDurable(dir, before), done);
  }

  private makeNamesDurable(dir: string, among: ReadonlySet<NameChange>): void {
    const later: NameChange[] = [];
    for (const change of this.changes) {
      if (among.has(change) && dirname(change.kind === 'rename' ? change.to : change.path) === dir) applyChange(this.durableNames, change);
      else later.push(change);
    }
    this.changes = later;
  }

  lock(dir: string): void {
    if (this.locks.has(dir)) throw new Error(`${dir} is locked`);
    this.locks.add(dir);
  }

  unlock(dir: string): void {
    this.locks.delete(dir);
  }

  /** When the next fdatasync finishes (Infinity: none pending). */
  nextSyncAt(): number {
    return this.syncs[0]?.at ?? Infinity;
  }

  /** Finish every fdatasync due by now, in order. */
  finishSyncs(now: number): void {
    while (this.syncs.length > 0 && this.syncs[0].at <= now) {
      const sync = this.syncs.shift()!;
      sync.finish();
      sync.done();
    }
  }

  /**
   * The server crashes: unfinished syncs and open files are gone; each file
   * keeps its durable bytes and a random prefix of the rest; the names keep
   * their durable state and a random prefix of the later changes. Returns how
   * many bytes that were written but not durable were lost.
   */
  crash(random: Random): number {
    this.syncs = [];
    this.handles.clear();
    this.locks.clear();
    const kept = random.int(0, this.changes.length);
    const inodes = new Set([...this.names.values(), ...this.durableNames.values()]);
    for (const change of this.changes) if (change.kind === 'link') inodes.add(change.inode);
    for (const change of this.changes.slice(0, kept)) applyChange(this.durableNames, change);
    this.changes = [];
    this.names = new Map(this.durableNames);
    let lost = 0;
    for (const inode of inodes) {
      const unsynced = inode.length - inode.durableLength;
      const survives = random.int(0, unsynced);
      lost += unsynced - survives;
      inode.length = inode.durableLength + survives;
      inode.durableLength = inode.length;
    }
    return lost;
  }

  private inode(path: string): Inode {
    const inode = this.names.get(path);
    if (!inode) throw fileError('ENOENT', path);
    return inode;
  }

  private handle(file: FileHandle): Inode {
    const inode = this.handles.get(file);
    if (!inode) throw fileError('EBADF', String(file));
    return inode;
  }
}

function applyChange(names: Map<string, Inode>, change: NameChange): void {
  if (change.kind === 'link') names.set(change.path, change.inode);
  else if (change.kind === 'unlink') names.delete(change.path);
  else {
    const inode = names.get(change.from);
    names.delete(change.from);
    if (inode) names.set(change.to, inode);
  }
}
