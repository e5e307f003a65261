/**
 * A daemon's log files (SPEC section 3), in its data directory:
 *
 *   snapshot.json          the state after some point, written atomically
 *                          (temp file, fsync, rename, fsync of the directory)
 *   journal.<g>.jsonl      JSON lines appended after snapshot generation g
 *   LOCK                   the pid of the daemon using the directory
 *   incarnation            this run's number, later than every earlier run's:
 *                          it names the run in each datagram (wire/replayGuard.ts)
 *
 * Appends are buffered and made durable together by sync(): one write and
 * one fdatasync for everything queued (group commit). A snapshot starts a
 * new journal generation; the old journal is deleted only after the new
 * snapshot and the new journal's name are durable, so a crash at any point
 * leaves a snapshot and the journal that continues it.
 *
 * All file access goes through a FileSystem (fileSystem.ts): the real disk
 * in the daemon, a simulated one in the simulator.
 */
import { join } from 'node:path';
import type { EngineState } from '../broadcast/recovery.js';
import type { JournalRecord } from '../broadcast/types.js';
import { ChorusError, invariant } from '../errors.js';
import type { FileHandle, FileSystem } from './fileSystem.js';
import { journalLine, parseJournalRecord, parseSnapshot, RecordError, snapshotFormat, snapshotVersion, type SnapshotFile } from './records.js';

export const snapshotName = 'snapshot.json';
export const incarnationName = 'incarnation';
const journalPattern = /^journal\.(\d+)\.jsonl$/;

export function journalName(generation: number): string {
  return `journal.${generation}.jsonl`;
}

export interface LoadedLog {
  readonly snapshot?: SnapshotFile;
  readonly generation: number;
  readonly records: JournalRecord[];
  /** recordLines[i] is the journal line of records[i]. */
  readonly recordLines: number[];
  readonly journalFile: string;
  /** A last line cut short by a crash: dropped, never replayed. */
  readonly tornTail?: { readonly line: number; readonly offset: number; readonly bytes: number };
  /** Journals of older generations left behind by a crash during a snapshot. */
  readonly staleJournals: string[];
}

/** Read and validate a data directory without changing it (the daemon and the inspector share this). */
export function readLogFiles(fs: FileSystem, dir: string, serverId: number, serverCount: number): LoadedLog {
  if (!fs.exists(dir)) return { generation: 0, records: [], recordLines: [], journalFile: join(dir, journalName(0)), staleJournals: [] };
  const snapshot = readSnapshot(fs, dir, serverId, serverCount);
  const generation = snapshot?.generation ?? 0;
  const generations = listJournals(fs, dir);
  const newer = generations.filter((g) => g > generation);
  if (newer.length > 0) {
    throw new ChorusError(
      'LOG_CORRUPT',
      `${join(dir, journalName(newer[0]))}:1: journal generation ${newer[0]} is newer than the snapshot (generation ${generation}); the snapshot is missing or old`,
    );
  }
  const journalFile = join(dir, journalName(generation));
  const staleJournals = generations.filter((g) => g < generation).map((g) => join(dir, journalName(g)));
  if (!fs.exists(journalFile)) return { snapshot, generation, records: [], recordLines: [], journalFile, staleJournals };
  return { snapshot, generation, journalFile, staleJournals, ...readJournal(fs, journalFile, serverCount) };
}

function listJournals(fs: FileSystem, dir: string): number[] {
  return fs
    .list(dir)
    .map((name) => journalPattern.exec(name))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => Number(match[1]))
    .sort((a, b) => a - b);
}

function readText(fs: FileSystem, file: string): string {
  try {
    return fs.readText(file);
  } catch (err) {
    throw new ChorusError('LOG_UNREADABLE', `${file}: cannot read: ${(err as Error).message}`);
  }
}

function readSnapshot(fs: FileSystem, dir: string, serverId: number, serverCount: number): SnapshotFile | undefined {
  const file = join(dir, snapshotName);
  if (!fs.exists(file)) return undefined;
  const text = readText(fs, file);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ChorusError('LOG_CORRUPT', `${file}:${lineOfJsonError(text, err as Error)}: not valid JSON: ${(err as Error).message}`);
  }
  try {
    return parseSnapshot(value, serverId, serverCount);
  } catch (err) {
    if (err instanceof RecordError) throw new ChorusError('LOG_CORRUPT', `${file}:1: ${err.message}`);
    throw err;
  }
}

function lineOfJsonError(text: string, err: Error): number {
  const position = /position (\d+)/.exec(err.message);
  if (!position) return 1;
  return text.slice(0, Number(position[1])).split('\n').length;
}

function readJournal(fs: FileSystem, file: string, serverCount: number): Pick<LoadedLog, 'records' | 'recordLines' | 'tornTail'> {
  const text = readText(fs, file);
  const records: JournalRecord[] = [];
  const recordLines: number[] = [];
  const lines = text.split('\n');
  // Text after the last newline was never completely written: the torn tail.
  const tail = lines.pop() ?? '';
  lines.forEach((line, index) => {
    const lineNo = index + 1;
    try {
      records.push(parseJournalRecord(JSON.parse(line), serverCount));
      recordLines.push(lineNo);
    } catch (err) {
      const why = err instanceof RecordError ? err.message : 'not valid JSON';
      throw new ChorusError('LOG_CORRUPT', `${file}:${lineNo}: ${why}`);
    }
  });
  if (tail === '') return { records, recordLines };
  const offset = Buffer.byteLength(text) - Buffer.byteLength(tail);
  return { records, recordLines, tornTail: { line: lines.length + 1, offset, bytes: Buffer.byteLength(tail) } };
}

/** Serialise a snapshot with one message per line, so that a person can read it and errors have useful lines. */
export function snapshotText(snapshot: SnapshotFile): string {
  const { messages, ...engine } = snapshot.engine;
  const head = [
    `"format":${JSON.stringify(snapshot.format)}`,
    `"version":${snapshot.version}`,
    `"serverId":${snapshot.serverId}`,
    `"serverCount":${snapshot.serverCount}`,
    `"generation":${snapshot.generation}`,
  ];
  const messageLines = messages.map((m) => JSON.stringify(m)).join(',\n');
  const engineText = `${JSON.stringify(engine).slice(0, -1)},"messages":[\n${messageLines}\n]}`;
  return `{${head.join(',\n')},\n"engine":${engineText},\n"app":${JSON.stringify(snapshot.app ?? null)}\n}\n`;
}

export interface LogFilesOptions {
  readonly fs: FileSystem;
  readonly dir: string;
  readonly serverId: number;
  readonly serverCount: number;
  /** The wall clock, in ms: a run number is never below it (see beginIncarnation). */
  readonly wallClockMs: number;
  /**
   * TEST ONLY: a deliberately broken variant the simulator must catch: the
   * snapshot's rename (and the new journal's name) are not made durable
   * before the old journal is deleted, so a crash can lose them.
   */
  readonly brokenVariant?: 'snapshot-rename-not-durable';
}

export class LogFiles {
  private fd: FileHandle;
  private pending: string[] = [];
  private generation: number;
  /** An fdatasync is running; at most one at a time, so they finish in the order asked for. */
  private syncing = false;
  /** Callers of sync() whose records go into the next write and fdatasync. */
  private waiting: ((error?: ChorusError) => void)[] = [];
  /** This run of the daemon: see beginIncarnation. */
  incarnation = 0;
  /** Bytes in the current journal, durable or pending. */
  journalBytes = 0;
  /** Bytes in the current journal known to be durable. */
  private durableBytes = 0;
  /** Bytes written to the current journal (durable or not). */
  private writtenBytes = 0;
  journalRecords = 0;
  syncs = 0;

  private constructor(
    private readonly options: LogFilesOptions,
    loaded: LoadedLog,
  ) {
    this.generation = loaded.generation;
    this.fd = options.fs.open(loaded.journalFile, 'append');
    this.journalRecords = loaded.records.length;
  }

  private get fs(): FileSystem {
    return this.options.fs;
  }

  private get dir(): string {
    return this.options.dir;
  }

  /**
   * Open a data directory for a daemon: take its lock, read and validate it,
   * cut a torn last line off the journal (the warning is the caller's), and
   * remove journals a crash left behind during a snapshot.
   */
  static open(options: LogFilesOptions): { files: LogFiles; loaded: LoadedLog } {
    const { fs, dir, serverId, serverCount } = options;
    try {
      fs.makeDir(dir);
    } catch (err) {
      throw new ChorusError('STORAGE_FAILED', `${dir}: cannot create data directory: ${(err as Error).message}`);
    }
    try {
      fs.lock(dir);
    } catch (err) {
      if (err instanceof ChorusError) throw err;
      throw new ChorusError('STORAGE_FAILED', `${dir}: cannot write the data directory: ${(err as Error).message}`);
    }
    try {
      const loaded = readLogFiles(fs, dir, serverId, serverCount);
      if (loaded.tornTail) truncateFile(fs, loaded.journalFile, loaded.tornTail.offset);
      for (const stale of loaded.staleJournals) fs.unlink(stale);
      const files = new LogFiles(options, loaded);
      files.incarnation = beginIncarnation(fs, dir, options.wallClockMs);
      files.journalBytes = loaded.tornTail ? loaded.tornTail.offset : fs.size(loaded.journalFile);
      files.durableBytes = files.journalBytes;
      files.writtenBytes = files.journalBytes;
      return { files, loaded };
    } catch (err) {
      fs.unlock(dir);
      if (err instanceof ChorusError) throw err;
      throw new ChorusError('STORAGE_FAILED', `${dir}: ${(err as Error).message}`);
    }
  }

  /** Queue records; they are durable once a later sync() reports so. */
  append(records: readonly JournalRecord[]): void {
    for (const record of records) {
      const line = journalLine(record);
      this.pending.push(line);
      this.journalBytes += Buffer.byteLength(line);
    }
    this.journalRecords += records.length;
  }

  /** Nothing queued, and every sync finished: everything appended is durable. */
  get idle(): boolean {
    return this.pending.length === 0 && !this.syncing && this.waiting.length === 0;
  }

  /**
   * Group commit, pipelined: one write of everything queued, then one
   * fdatasync; `done` runs once it is durable, or with the error (a full
   * disk, a read-only file system) saying which file. While an fdatasync
   * runs (off the event loop on the real disk), what is appended meanwhile
   * waits and goes into the next write, so a slow disk makes the batches
   * larger instead of stalling the server. After an error the records were
   * not made durable and must not be acted on; the partly written tail is
   * cut off where that is possible.
   */
  sync(done: (error?: ChorusError) => void): void {
    this.waiting.push(done);
    if (!this.syncing) this.writeAndSync();
  }

  private writeAndSync(): void {
    const dones = this.waiting;
    this.waiting = [];
    const data = Buffer.from(this.pending.join(''));
    this.pending = [];
    try {
      let written = 0;
      while (written < data.length) written += this.fs.write(this.fd, data.subarray(written));
    } catch (err) {
      this.cutBackTo(this.durableBytes);
      const error = storageFailed(`${this.journalFile}: cannot write the journal`, err);
      for (const done of dones) done(error);
      return;
    }
    this.writtenBytes += data.length;
    const upTo = this.writtenBytes;
    const generation = this.generation;
    this.syncing = true;
    this.fs.fdatasync(this.fd, (fault) => {
      this.syncing = false;
      if (this.fd < 0) return; // closed as a crash would, meanwhile
      let error: ChorusError | undefined;
      if (fault) {
        this.cutBackTo(this.durableBytes);
        error = storageFailed(`${this.journalFile}: cannot write the journal`, fault);
      } else {
        if (generation === this.generation) this.durableBytes = Math.max(this.durableBytes, upTo);
        this.syncs++;
      }
      for (const done of dones) done(error);
      if (this.waiting.length > 0 && !this.syncing && this.fd >= 0) this.writeAndSync();
    });
  }

  private get journalFile(): string {
    return join(this.dir, journalName(this.generation));
  }

  /** Best effort: a torn tail is also dropped on the next start, so failing here loses nothing. */
  private cutBackTo(length: number): void {
    try {
      this.fs.truncate(this.fd, length);
      this.writtenBytes = length;
    } catch {
      // A read-only file system refuses this too; recovery drops the torn tail.
    }
  }

  /**
   * Write a snapshot of everything up to now and continue with a fresh
   * journal; only when idle (everything appended is durable). A failure at
   * any step leaves the old snapshot and journal, or the new snapshot alone,
   * both complete; the caller must not write again.
   */
  writeSnapshot(engine: EngineState, app: unknown): void {
    invariant(this.idle, 'a snapshot is written only when every journal record is durable');
    try {
      this.rotate(engine, app);
    } catch (err) {
      throw storageFailed(`${this.dir}: cannot write a snapshot`, err);
    }
  }

  private rotate(engine: EngineState, app: unknown): void {
    const { fs, dir, serverId, serverCount } = this.options;
    const generation = this.generation + 1;
    const snapshot: SnapshotFile = { format: snapshotFormat, version: snapshotVersion, serverId, serverCount, generation, engine, app };
    replaceFile(fs, join(dir, snapshotName), snapshotText(snapshot));
    const newFd = fs.open(join(dir, journalName(generation)), 'append');
    if (this.options.brokenVariant !== 'snapshot-rename-not-durable') fs.syncDir(dir);
    fs.close(this.fd);
    fs.unlink(join(dir, journalName(this.generation)));
    this.fd = newFd;
    this.generation = generation;
    this.journalBytes = 0;
    this.durableBytes = 0;
    this.writtenBytes = 0;
    this.journalRecords = 0;
  }

  /** Close after a clean stop: everything appended must be durable by now. */
  close(): void {
    invariant(this.idle, 'the journal is closed only when every record is durable');
    this.release();
  }

  /** Close without making what is queued durable: what a crash does (after a storage failure, and in tests). */
  abandon(): void {
    this.pending = [];
    this.waiting = [];
    this.release();
  }

  private release(): void {
    if (this.fd < 0) return;
    this.fs.close(this.fd);
    this.fd = -1;
    this.fs.unlock(this.dir);
  }
}

/**
 * The number of this run: one more than the last run's, or the wall clock in
 * milliseconds if that is later (so a server whose directory was wiped still
 * starts a later run). Durable before the daemon sends anything.
 */
function beginIncarnation(fs: FileSystem, dir: string, wallClockMs: number): number {
  const file = join(dir, incarnationName);
  let previous = 0;
  if (fs.exists(file)) {
    previous = Number(readText(fs, file).trim());
    if (!Number.isSafeInteger(previous) || previous < 0) throw new ChorusError('LOG_CORRUPT', `${file}:1: not a run number`);
  }
  const next = Math.max(previous + 1, Math.floor(wallClockMs));
  replaceFile(fs, file, `${next}\n`);
  fs.syncDir(dir);
  return next;
}

/** Replace a file atomically: temp file, fsync, rename (the caller syncs the directory). */
function replaceFile(fs: FileSystem, file: string, text: string): void {
  const temp = `${file}.tmp`;
  const fd = fs.open(temp, 'truncate');
  try {
    const data = Buffer.from(text);
    let written = 0;
    while (written < data.length) written += fs.write(fd, data.subarray(written));
    fs.fsync(fd);
  } finally {
    fs.close(fd);
  }
  fs.rename(temp, file);
}

function storageFailed(what: string, err: unknown): ChorusError {
  return new ChorusError('STORAGE_FAILED', `${what}: ${(err as Error).message}`);
}

function truncateFile(fs: FileSystem, file: string, length: number): void {
  const fd = fs.open(file, 'append');
  try {
    fs.truncate(fd, length);
    fs.fsync(fd);
  } finally {
    fs.close(fd);
  }
}
