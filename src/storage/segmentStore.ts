/**
 * Named streams of records (each chat group's stable history), kept in
 * append-only JSON-lines segment files under the data directory:
 *
 *   history/<name>-<hash>/<first>.jsonl    records first .. first + segmentRecords - 1
 *
 * (<name> is the stream's name cut to safe characters, <hash> the start of
 * its SHA-256, so any name is a file name and no two collide.)
 *
 * Invariant: a stream's records 0 .. written-1 are in its files, in order,
 * one line each; written .. count-1 are buffered here. Memory holds only the
 * buffer, the first record of each segment (read when a search needs it) and
 * a bounded cache of recently read segments, so it does not grow with the
 * history.
 *
 * Durability: the files are written in batches and made durable by sync(),
 * which the caller runs before it records the counts in a snapshot. Opened
 * again, the store is given those counts: what the files hold past them
 * (written after that snapshot, perhaps torn by a crash) is cut off, since
 * the journal replays it; fewer records than counted is LOG_CORRUPT.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { ChorusError } from '../errors.js';
import type { FileHandle, FileSystem } from './fileSystem.js';
import { LineBuffer } from './lineBuffer.js';

const historyDirName = 'history';
/** Records per segment file: bounds what one read parses. */
const defaultSegmentRecords = 1024;
/** Records kept parsed in memory (whole segments, least recently used dropped first). */
const maxCachedRecords = 16_384;
/**
 * Buffered records past which the buffer is written to the files (without a
 * sync). Small enough that one write is a short step: at 1,000 appends/s a
 * write of 4,096 records came every few seconds, ran unoptimised code, and
 * held the event loop for 11-19 ms (the longest steps there).
 */
const defaultFlushRecords = 512;
const segmentPattern = /^(\d{10})\.jsonl$/;

export interface RecordCodec<T> {
  encode(record: T): string;
  /** The record a line holds; undefined if it holds none. */
  decode(line: string): T | undefined;
}

export interface SegmentStoreOptions<T> {
  readonly fs: FileSystem;
  /** The data directory; the segments go under its history/ folder. */
  readonly dir: string;
  readonly codec: RecordCodec<T>;
  /** Records per stream, as the last snapshot counted them. */
  readonly counts: ReadonlyMap<string, number>;
  /** Change no file (the log inspector): records appended stay in memory. */
  readonly readOnly?: boolean;
  readonly segmentRecords?: number;
  /** Buffered records written to the files (without a sync) once there are this many. */
  readonly flushRecords?: number;
}

interface Stream<T> {
  readonly name: string;
  readonly dir: string;
  count: number;
  written: number;
  buffer: T[];
  /** firsts[s] is segment s's first record, once known. */
  readonly firsts: (T | undefined)[];
  /** The cache key of the segment appended to: made once per segment, not per record. */
  newest?: { readonly segment: number; readonly key: string };
}

export class SegmentStore<T> {
  private readonly streams = new Map<string, Stream<T>>();
  private readonly cache = new Map<string, T[]>();
  private cachedRecords = 0;
  private readonly dirty = new Set<Stream<T>>();
  private buffered = 0;
  /** A write failed: records stay buffered, and only sync() (before a snapshot, which reports it) tries again. */
  private flushDeferred = false;
  /** A sync in the background runs: nothing is written meanwhile (a write to a file being synced may wait for the sync). */
  private syncingInBackground = false;
  /** A failed write could not be undone: the files are not trusted until a restart cuts them back. */
  private failure: ChorusError | undefined;
  /** Files written since the last sync, and directories whose names changed. */
  private readonly unsyncedFiles = new Set<string>();
  private readonly unsyncedDirs = new Set<string>();
  /** Where a write's lines are encoded. */
  private readonly lines = new LineBuffer();
  private readonly segmentRecords: number;
  private readonly root: string;

  private constructor(private readonly options: SegmentStoreOptions<T>) {
    this.segmentRecords = options.segmentRecords ?? defaultSegmentRecords;
    this.root = join(options.dir, historyDirName);
  }

  /** Open the store at the counts a snapshot recorded, cutting off what the files hold past them. */
  static open<T>(options: SegmentStoreOptions<T>): SegmentStore<T> {
    const store = new SegmentStore(options);
    store.storage(() => store.reconcile());
    return store;
  }

  private get fs(): FileSystem {
    return this.options.fs;
  }

  count(name: string): number {
    return this.streams.get(name)?.count ?? 0;
  }

  append(name: string, record: T): void {
    const stream = this.streams.get(name) ?? this.addStream(name, 0);
    const index = stream.count++;
    stream.buffer.push(record);
    const segment = Math.floor(index / this.segmentRecords);
    if (stream.newest?.segment !== segment) stream.newest = { segment, key: this.cacheKey(stream, segment) };
    const { key } = stream.newest;
    // A new segment is cached as it is written: the newest records are the ones read soonest (likes, pushes).
    if (index % this.segmentRecords === 0) {
      stream.firsts[segment] = record;
      this.cacheSegment(key, [record]);
    } else this.cache.get(key)?.push(record);
    this.dirty.add(stream);
    if (++this.buffered >= this.flushRecords && !this.flushDeferred && !this.syncingInBackground) this.flushSoon();
  }

  /** Records from .. to-1 of a stream (fewer if it holds fewer). */
  read(name: string, from: number, to: number): T[] {
    const stream = this.streams.get(name);
    if (!stream) return [];
    const end = Math.min(to, stream.count);
    const out: T[] = [];
    for (let i = Math.max(0, from); i < end; ) {
      const segment = Math.floor(i / this.segmentRecords);
      const start = segment * this.segmentRecords;
      const records = this.segment(stream, segment);
      const upTo = Math.min(end, start + this.segmentRecords);
      for (let k = i; k < upTo; k++) out.push(records[k - start]);
      i = upTo;
    }
    return out;
  }

  /**
   * The record among the first `limit` of a stream for which compare gives 0,
   * with its index; the stream must be sorted by compare (negative: before
   * the one sought). Reads one segment, found from the segments' first records.
   */
  find(name: string, compare: (record: T) => number, limit: number): { index: number; record: T } | undefined {
    const stream = this.streams.get(name);
    const n = Math.min(limit, stream?.count ?? 0);
    if (!stream || n === 0) return undefined;
    let lo = 0;
    let hi = Math.ceil(n / this.segmentRecords) - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (compare(this.first(stream, mid)) <= 0) lo = mid;
      else hi = mid - 1;
    }
    const start = lo * this.segmentRecords;
    const records = this.segment(stream, lo);
    let a = 0;
    let b = Math.min(records.length, n - start) - 1;
    while (a <= b) {
      const mid = (a + b) >>> 1;
      const order = compare(records[mid]);
      if (order === 0) return { index: start + mid, record: records[mid] };
      if (order < 0) a = mid + 1;
      else b = mid - 1;
    }
    return undefined;
  }

  /** Make every record appended so far durable: written, synced, and the new files' names too. */
  sync(): void {
    if (this.options.readOnly) return;
    this.storage(() => {
      this.flush();
      for (const path of this.unsyncedFiles) {
        const file = this.fs.open(path, 'append');
        try {
          this.fs.fsync(file);
        } finally {
          this.fs.close(file);
        }
      }
      this.unsyncedFiles.clear();
      for (const dir of this.unsyncedDirs) this.fs.syncDir(dir);
      this.unsyncedDirs.clear();
    });
  }

  /** Write the buffered records to their files now (not synced). Throws a STORAGE_FAILED ChorusError. */
  flushNow(): void {
    this.storage(() => this.flush());
  }

  private get flushRecords(): number {
    return this.options.flushRecords ?? defaultFlushRecords;
  }

  /**
   * Make every record flushed so far durable off the event loop: the files
   * written since the last sync and the new files' names. `done` runs once
   * all of them are, or with the first error.
   */
  syncInBackground(done: (error?: Error) => void): void {
    if (this.options.readOnly) return done();
    const files = [...this.unsyncedFiles];
    const dirs = [...this.unsyncedDirs];
    this.unsyncedFiles.clear();
    this.unsyncedDirs.clear();
    let left = files.length + dirs.length + 1;
    let failed: Error | undefined;
    this.syncingInBackground = true;
    const finished = (error?: Error) => {
      failed ??= error;
      if (--left > 0) return;
      this.syncingInBackground = false;
      if (this.buffered >= this.flushRecords && !this.flushDeferred) this.flushSoon();
      done(failed);
    };
    for (const path of files) this.syncFileInBackground(path, finished);
    for (const dir of dirs) this.fs.syncDirInBackground(dir, finished);
    finished();
  }

  private syncFileInBackground(path: string, done: (error?: Error) => void): void {
    let file: FileHandle;
    try {
      file = this.fs.open(path, 'append');
    } catch (err) {
      return done(err as Error);
    }
    this.fs.syncInBackground(file, (error) => {
      try {
        this.fs.close(file);
      } catch {
        // Already gone (a simulated crash closed every file).
      }
      done(error);
    });
  }

  /** Write the buffered records now if the disk takes them; if not, they wait for the sync before the next snapshot, which reports the error. */
  private flushSoon(): void {
    try {
      this.storage(() => this.flush());
    } catch {
      this.flushDeferred = true;
    }
  }

  /** Write the buffered records to their segment files (not synced). */
  private flush(): void {
    if (this.options.readOnly) return;
    if (this.failure) throw this.failure;
    for (const stream of this.dirty) {
      this.writeBuffer(stream);
      this.dirty.delete(stream);
    }
    this.buffered = 0;
    this.flushDeferred = false;
  }

  private writeBuffer(stream: Stream<T>): void {
    if (!this.fs.exists(stream.dir)) {
      if (!this.fs.exists(this.root)) this.unsyncedDirs.add(this.options.dir);
      this.fs.makeDir(stream.dir);
      this.unsyncedDirs.add(this.root);
    }
    const { codec } = this.options;
    for (let i = stream.written; i < stream.count; ) {
      const start = Math.floor(i / this.segmentRecords) * this.segmentRecords;
      const end = Math.min(stream.count, start + this.segmentRecords);
      const path = this.segmentPath(stream, start);
      if (i === start) this.unsyncedDirs.add(stream.dir);
      const lines = this.lines;
      lines.clear();
      for (let k = i; k < end; k++) lines.add(`${codec.encode(stream.buffer[k - stream.written])}\n`);
      this.writeFile(path, lines.view());
      this.unsyncedFiles.add(path);
      // Written: out of the buffer, so that a later failure never writes them twice.
      stream.buffer.splice(0, end - stream.written);
      stream.written = end;
      i = end;
    }
  }

  /** Append to a file (not synced: sync() and syncInBackground() do that for every file written since the last). */
  private writeFile(path: string, data: Buffer): void {
    const before = this.fs.size(path);
    const file = this.fs.open(path, 'append');
    try {
      const wrote = this.fs.write(file, data);
      if (wrote !== data.length) throw new Error(`${path}: wrote ${wrote} of ${data.length} bytes (is the disk full?)`);
    } catch (err) {
      this.undoWrite(file, path, before, err as Error);
      throw err;
    }
    this.fs.close(file);
  }

  /** Cut a failed write off the file; if even that fails, no further write is trusted until a restart cuts the file back to the snapshot's counts. */
  private undoWrite(file: FileHandle, path: string, size: number, error: Error): void {
    try {
      this.fs.truncate(file, size);
    } catch {
      this.failure = new ChorusError('STORAGE_FAILED', `${path}: a failed write could not be undone (${error.message})`);
    } finally {
      this.fs.close(file);
    }
  }

  /** Segment `segment` of a stream, whole as far as the stream goes: from the cache, or read and cached. */
  private segment(stream: Stream<T>, segment: number): T[] {
    const key = this.cacheKey(stream, segment);
    const cached = this.cache.get(key);
    if (cached) {
      this.cache.delete(key);
      this.cache.set(key, cached);
      return cached;
    }
    const start = segment * this.segmentRecords;
    const end = Math.min(stream.count, start + this.segmentRecords);
    const records = start < stream.written ? this.readSegment(stream, start, Math.min(end, stream.written) - start) : [];
    for (let k = Math.max(start, stream.written); k < end; k++) records.push(stream.buffer[k - stream.written]);
    this.cacheSegment(key, records);
    return records;
  }

  /** Keep a segment's records, forgetting the least recently used segments past maxCachedRecords. */
  private cacheSegment(key: string, records: T[]): void {
    if (!this.cache.has(key)) this.cachedRecords += this.segmentRecords;
    this.cache.delete(key);
    this.cache.set(key, records);
    for (const [oldKey] of this.cache) {
      if (this.cachedRecords <= maxCachedRecords || oldKey === key) break;
      this.cache.delete(oldKey);
      this.cachedRecords -= this.segmentRecords;
    }
  }

  private readSegment(stream: Stream<T>, start: number, lines: number): T[] {
    const path = this.segmentPath(stream, start);
    const text = this.storage(() => this.fs.readText(path));
    const records: T[] = [];
    let at = 0;
    for (let line = 1; line <= lines; line++) {
      const next = text.indexOf('\n', at);
      if (next < 0) throw new ChorusError('LOG_CORRUPT', `${path}: holds ${line - 1} records, ${lines} expected`);
      records.push(this.decode(text.slice(at, next), path, line));
      at = next + 1;
    }
    return records;
  }

  /** A segment's first record: from memory, or the first line of its file. */
  private first(stream: Stream<T>, segment: number): T {
    const known = stream.firsts[segment];
    if (known !== undefined) return known;
    const start = segment * this.segmentRecords;
    if (start >= stream.written) return stream.buffer[start - stream.written];
    const path = this.segmentPath(stream, start);
    const record = this.decode(this.firstLine(path), path, 1);
    stream.firsts[segment] = record;
    return record;
  }

  /** A file's first line, read a few KiB at a time (a line holds one message of at most a few KiB). */
  private firstLine(path: string): string {
    for (let bytes = 4096; ; bytes *= 4) {
      const read = this.storage(() => this.fs.readRange(path, 0, bytes));
      const end = read.indexOf(0x0a);
      if (end >= 0) return read.toString('utf8', 0, end);
      if (read.length < bytes) throw new ChorusError('LOG_CORRUPT', `${path}:1: cut short`);
    }
  }

  private decode(line: string, path: string, lineNo: number): T {
    const record = this.options.codec.decode(line);
    if (record === undefined) throw new ChorusError('LOG_CORRUPT', `${path}:${lineNo}: not a history record`);
    return record;
  }

  /** Match the files to the counts: cut off what lies past them, and fail if anything counted is missing. */
  private reconcile(): void {
    const { counts, readOnly } = this.options;
    if (!readOnly) this.fs.makeDir(this.root);
    for (const [name, count] of counts) this.addStream(name, count);
    const known = new Set([...this.streams.values()].map((s) => s.dir));
    const onDisk = this.fs.exists(this.root) ? this.fs.list(this.root).map((entry) => join(this.root, entry)) : [];
    for (const dir of onDisk) {
      if (known.has(dir)) continue;
      // A stream begun after the snapshot: the journal replays it.
      if (!readOnly) for (const entry of this.fs.list(dir)) this.fs.unlink(join(dir, entry));
    }
    for (const stream of this.streams.values()) this.trim(stream);
  }

  private trim(stream: Stream<T>): void {
    const { readOnly } = this.options;
    const starts = this.fs.exists(stream.dir)
      ? this.fs
          .list(stream.dir)
          .map((entry) => segmentPattern.exec(entry))
          .filter((m) => m !== null)
          .map((m) => Number(m[1]))
      : [];
    for (const start of starts) if (start >= stream.count && !readOnly) this.fs.unlink(this.segmentPath(stream, start));
    if (stream.count === 0) return;
    const have = new Set(starts);
    for (let start = 0; start < stream.count; start += this.segmentRecords) {
      if (!have.has(start)) throw new ChorusError('LOG_CORRUPT', `${this.segmentPath(stream, start)}: missing, but the snapshot counts ${stream.count} messages in "${stream.name}"`);
    }
    const last = Math.floor((stream.count - 1) / this.segmentRecords) * this.segmentRecords;
    const path = this.segmentPath(stream, last);
    const bytes = this.fs.readRange(path, 0, this.fs.size(path));
    const needed = stream.count - last;
    let end = 0;
    for (let line = 0; line < needed; line++) {
      const next = bytes.indexOf(0x0a, end);
      if (next < 0) throw new ChorusError('LOG_CORRUPT', `${path}: holds ${line} whole records, but the snapshot counts ${needed} in it`);
      end = next + 1;
    }
    if (end === bytes.length || readOnly) return;
    const file = this.fs.open(path, 'append');
    try {
      this.fs.truncate(file, end);
      this.fs.fsync(file);
    } finally {
      this.fs.close(file);
    }
  }

  private addStream(name: string, count: number): Stream<T> {
    const stream: Stream<T> = { name, dir: join(this.root, streamDirName(name)), count, written: count, buffer: [], firsts: [] };
    this.streams.set(name, stream);
    return stream;
  }

  private segmentPath(stream: Stream<T>, start: number): string {
    return join(stream.dir, `${String(start).padStart(10, '0')}.jsonl`);
  }

  private cacheKey(stream: Stream<T>, segment: number): string {
    return `${stream.dir}\n${segment}`;
  }

  /** Run a file operation; a failure is STORAGE_FAILED naming the folder (LOG_CORRUPT passes through). */
  private storage<R>(action: () => R): R {
    try {
      return action();
    } catch (err) {
      if (err instanceof ChorusError) throw err;
      throw new ChorusError('STORAGE_FAILED', `${this.root}: ${(err as Error).message}`);
    }
  }
}

/** A stream's folder: its name cut to safe characters, and a hash of the whole name. */
export function streamDirName(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 32);
  return `${safe}-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}
