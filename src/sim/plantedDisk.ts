/**
 * Storage bugs planted for the simulator to catch (test/simulator.test.ts),
 * as a disk that does what the buggy code would have done: the log-file and
 * history code runs unchanged on it, and no production module holds a
 * branch for them.
 *
 * - snapshot-rename-not-durable: the data directory's names are never made
 *   durable, so a crash can undo a snapshot's rename or a new journal.
 * - history-not-synced: the history segments are written but never made
 *   durable (neither their bytes nor their names).
 * - history-tail-kept: a reopen does not cut what a segment holds past the
 *   snapshot's count (a torn line among it).
 */
import { join } from 'node:path';
import type { FileHandle, FileSystem } from '../storage/fileSystem.js';

export type PlantedDisk = 'snapshot-rename-not-durable' | 'history-not-synced' | 'history-tail-kept';

export const plantedDisks: readonly PlantedDisk[] = ['snapshot-rename-not-durable', 'history-not-synced', 'history-tail-kept'];

/** `disk` as the planted bug sees it, for the server whose data directory is `dataDir`. */
export function plantedDisk(disk: FileSystem, dataDir: string, plant: PlantedDisk): FileSystem {
  const history = join(dataDir, 'history');
  const inHistory = (path: string) => path === history || path.startsWith(`${history}/`);
  const paths = new Map<FileHandle, string>();
  const planted: FileSystem = {
    exists: (path) => disk.exists(path),
    readText: (path) => disk.readText(path),
    readRange: (path, offset, length) => disk.readRange(path, offset, length),
    list: (dir) => disk.list(dir),
    size: (path) => disk.size(path),
    makeDir: (dir) => disk.makeDir(dir),
    open: (path, mode) => disk.open(path, mode),
    write: (file, data) => disk.write(file, data),
    fsync: (file) => disk.fsync(file),
    fdatasync: (file, done) => disk.fdatasync(file, done),
    syncInBackground: (file, done) => disk.syncInBackground(file, done),
    truncate: (file, length) => disk.truncate(file, length),
    close: (file) => disk.close(file),
    rename: (from, to) => disk.rename(from, to),
    unlink: (path) => disk.unlink(path),
    syncDir: (dir) => disk.syncDir(dir),
    syncDirInBackground: (dir, done) => disk.syncDirInBackground(dir, done),
    lock: (dir) => disk.lock(dir),
    unlock: (dir) => disk.unlock(dir),
  };
  planted.open = (path, mode) => {
    const file = disk.open(path, mode);
    paths.set(file, path);
    return file;
  };
  planted.close = (file) => {
    paths.delete(file);
    disk.close(file);
  };
  const historyFile = (file: FileHandle) => inHistory(paths.get(file) ?? '');
  switch (plant) {
    case 'snapshot-rename-not-durable':
      planted.syncDir = (dir) => (dir === dataDir ? undefined : disk.syncDir(dir));
      planted.syncDirInBackground = (dir, done) => (dir === dataDir ? done() : disk.syncDirInBackground(dir, done));
      break;
    case 'history-not-synced':
      planted.fsync = (file) => (historyFile(file) ? undefined : disk.fsync(file));
      planted.syncDir = (dir) => (inHistory(dir) ? undefined : disk.syncDir(dir));
      planted.syncInBackground = (file, done) => (historyFile(file) ? done() : disk.syncInBackground(file, done));
      planted.syncDirInBackground = (dir, done) => (inHistory(dir) ? done() : disk.syncDirInBackground(dir, done));
      break;
    case 'history-tail-kept':
      planted.truncate = (file, length) => (historyFile(file) ? undefined : disk.truncate(file, length));
      break;
  }
  return planted;
}
