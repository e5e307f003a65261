/**
 * One snapshot file, written a slice at a time so that a large state never
 * blocks the server for long: the state it holds is immutable (the engine's
 * export and the application's stable state), so it is serialised in parts
 * between steps while the server goes on, into a temporary file that is then
 * made durable off the event loop. Renaming it over snapshot.json is the log
 * files' business (logFiles.ts).
 */
import type { FileHandle, FileSystem } from './fileSystem.js';
import { snapshotParts, type SnapshotFile } from './records.js';

/** About this much text per slice: a few milliseconds of serialising. */
export const snapshotSliceChars = 256 * 1024;

export class SnapshotWriter {
  private readonly parts: Iterator<string>;
  private fd: FileHandle;
  private written = false;
  /** A background sync holds the file open until it finishes. */
  private syncing = false;
  /** Bytes written so far. */
  bytes = 0;

  constructor(
    private readonly fs: FileSystem,
    readonly tempFile: string,
    snapshot: SnapshotFile,
  ) {
    this.parts = snapshotParts(snapshot)[Symbol.iterator]();
    this.fd = fs.open(tempFile, 'truncate');
  }

  /** Serialise and write about `budgetChars` more of the file; true once all of it is written. */
  write(budgetChars: number): boolean {
    const slice: string[] = [];
    let chars = 0;
    while (!this.written && chars < budgetChars) {
      const next = this.parts.next();
      if (next.done) this.written = true;
      else {
        slice.push(next.value);
        chars += next.value.length;
      }
    }
    const data = Buffer.from(slice.join(''));
    let at = 0;
    while (at < data.length) at += this.fs.write(this.fd, data.subarray(at));
    this.bytes += data.length;
    return this.written;
  }

  /** Make the whole file durable now, and close it. */
  syncNow(): void {
    try {
      this.fs.fsync(this.fd);
    } finally {
      this.close();
    }
  }

  /** Make the whole file durable off the event loop; `done` runs once it is (the file is closed by then). */
  syncInBackground(done: (error?: Error) => void): void {
    this.syncing = true;
    this.fs.syncInBackground(this.fd, (error) => {
      this.syncing = false;
      this.close();
      done(error);
    });
  }

  /** Stop writing (a background sync closes the file when it finishes); the temporary file is left for the next start to remove. */
  close(): void {
    if (this.fd < 0 || this.syncing) return;
    const fd = this.fd;
    this.fd = -1;
    this.fs.close(fd);
  }
}
