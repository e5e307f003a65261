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
 * one fdatasync for everything a step produced (group commit). A snapshot
 * starts a new journal generation; the old journal is deleted only after the
 * new snapshot is durable, so a crash at any point leaves a snapshot and the
 * journal that continues it.
 */
import { closeSync, existsSync, fdatasyncSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { EngineState } from '../broadcast/engine.js';
import type { JournalRecord } from '../broadcast/types.js';
import { ChorusError } from '../errors.js';
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
export function readLogFiles(dir: string, serverId: number, serverCount: number): LoadedLog {
  if (!existsSync(dir)) return { generation: 0, records: [], recordLines: [], journalFile: join(dir, journalName(0)), staleJournals: [] };
  const snapshot = readSnapshot(dir, serverId, serverCount);
  const generation = snapshot?.generation ?? 0;
  const generations = listJournals(dir);
  const newer = generations.filter((g) => g > generation);
  if (newer.length > 0) {
    throw new ChorusError(
      'LOG_CORRUPT',
      `${join(dir, journalName(newer[0]))}:1: journal generation ${newer[0]} is newer than the snapshot (generation ${generation}); the snapshot is missing or old`,
    );
  }
  const journalFile = join(dir, journalName(generation));
  const staleJournals = generations.filter((g) => g < generation).map((g) => join(dir, journalName(g)));
  if (!existsSync(journalFile)) return { snapshot, generation, records: [], recordLines: [], journalFile, staleJournals };
  return { snapshot, generation, journalFile, staleJournals, ...readJournal(journalFile, serverCount) };
}

function listJournals(dir: string): number[] {
  return readdirSync(dir)
    .map((name) => journalPattern.exec(name))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => Number(match[1]))
    .sort((a, b) => a - b);
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ChorusError('LOG_UNREADABLE', `${file}: cannot read: ${(err as Error).message}`);
  }
}

function readSnapshot(dir: string, serverId: number, serverCount: number): SnapshotFile | undefined {
  const file = join(dir, snapshotName);
  if (!existsSync(file)) return undefined;
  const text = readText(file);
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

function readJournal(file: string, serverCount: number): Pick<LoadedLog, 'records' | 'recordLines' | 'tornTail'> {
  const text = readText(file);
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

const lockedDirs = new Set<string>();

export class LogFiles {
  private fd: number;
  private pending: string[] = [];
  private generation: number;
  /** This run of the daemon: see beginIncarnation. */
  incarnation = 0;
  /** Bytes in the current journal, durable or pending. */
  journalBytes = 0;
  /** Bytes in the current journal known to be durable. */
  private durableBytes = 0;
  journalRecords = 0;
  syncs = 0;

  private constructor(
    readonly dir: string,
    private readonly serverId: number,
    private readonly serverCount: number,
    loaded: LoadedLog,
  ) {
    this.generation = loaded.generation;
    this.fd = openSync(loaded.journalFile, 'a');
    this.journalRecords = loaded.records.length;
  }

  /**
   * Open a data directory for a daemon: take its lock, read and validate it,
   * cut a torn last line off the journal (the warning is the caller's), and
   * remove journals a crash left behind during a snapshot.
   */
  static open(dir: string, serverId: number, serverCount: number): { files: LogFiles; loaded: LoadedLog } {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new ChorusError('STORAGE_FAILED', `${dir}: cannot create data directory: ${(err as Error).message}`);
    }
    try {
      lockDir(dir);
    } catch (err) {
      if (err instanceof ChorusError) throw err;
      throw new ChorusError('STORAGE_FAILED', `${dir}: cannot write the data directory: ${(err as Error).message}`);
    }
    try {
      const loaded = readLogFiles(dir, serverId, serverCount);
      if (loaded.tornTail) truncateFile(loaded.journalFile, loaded.tornTail.offset);
      for (const stale of loaded.staleJournals) unlinkSync(stale);
      const files = new LogFiles(dir, serverId, serverCount, loaded);
      files.incarnation = beginIncarnation(dir, Date.now());
      files.journalBytes = loaded.tornTail ? loaded.tornTail.offset : fileSize(loaded.journalFile);
      files.durableBytes = files.journalBytes;
      return { files, loaded };
    } catch (err) {
      unlockDir(dir);
      if (err instanceof ChorusError) throw err;
      throw new ChorusError('STORAGE_FAILED', `${dir}: ${(err as Error).message}`);
    }
  }

  /** Queue records; they are durable after the next sync(). */
  append(records: readonly JournalRecord[]): void {
    for (const record of records) {
      const line = journalLine(record);
      this.pending.push(line);
      this.journalBytes += Buffer.byteLength(line);
    }
    this.journalRecords += records.length;
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /**
   * Group commit: one write and one fdatasync for everything queued. On
   * failure (a full disk, a read-only file system) the partly written tail is
   * cut off where it can be, and the error says which file; the records
   * were not made durable and must not be acted on.
   */
  sync(): void {
    if (this.pending.length === 0) return;
    const data = Buffer.from(this.pending.join(''));
    this.pending = [];
    try {
      let written = 0;
      while (written < data.length) written += writeSync(this.fd, data, written);
      fdatasyncSync(this.fd);
    } catch (err) {
      this.cutBackTo(this.durableBytes);
      throw storageFailed(`${this.journalFile}: cannot write the journal`, err);
    }
    this.durableBytes += data.length;
    this.syncs++;
  }

  private get journalFile(): string {
    return join(this.dir, journalName(this.generation));
  }

  /** Best effort: a torn tail is also dropped on the next start, so failing here loses nothing. */
  private cutBackTo(length: number): void {
    try {
      ftruncateSync(this.fd, length);
    } catch {
      // A read-only file system refuses this too; recovery drops the torn tail.
    }
  }

  /**
   * Write a snapshot of everything up to now and continue with a fresh
   * journal. A failure at any step leaves the old snapshot and journal, or
   * the new snapshot alone, both complete; the caller must not write again.
   */
  writeSnapshot(engine: EngineState, app: unknown): void {
    this.sync();
    try {
      this.rotate(engine, app);
    } catch (err) {
      throw storageFailed(`${this.dir}: cannot write a snapshot`, err);
    }
  }

  private rotate(engine: EngineState, app: unknown): void {
    const generation = this.generation + 1;
    const snapshot: SnapshotFile = {
      format: snapshotFormat,
      version: snapshotVersion,
      serverId: this.serverId,
      serverCount: this.serverCount,
      generation,
      engine,
      app,
    };
    replaceFile(join(this.dir, snapshotName), snapshotText(snapshot));
    const newJournal = join(this.dir, journalName(generation));
    const newFd = openSync(newJournal, 'a');
    syncDir(this.dir);
    closeSync(this.fd);
    unlinkSync(join(this.dir, journalName(this.generation)));
    this.fd = newFd;
    this.generation = generation;
    this.journalBytes = 0;
    this.durableBytes = 0;
    this.journalRecords = 0;
  }

  close(): void {
    try {
      this.sync();
    } finally {
      closeSync(this.fd);
      unlockDir(this.dir);
    }
  }

  /** Close without syncing what is pending: what a crash does (tests use it). */
  abandon(): void {
    this.pending = [];
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
    unlockDir(this.dir);
  }
}

/**
 * The number of this run: one more than the last run's, or the wall clock in
 * milliseconds if that is later (so a server whose directory was wiped still
 * starts a later run). Durable before the daemon sends anything.
 */
function beginIncarnation(dir: string, nowMs: number): number {
  const file = join(dir, incarnationName);
  let previous = 0;
  if (existsSync(file)) {
    previous = Number(readText(file).trim());
    if (!Number.isSafeInteger(previous) || previous < 0) throw new ChorusError('LOG_CORRUPT', `${file}:1: not a run number`);
  }
  const next = Math.max(previous + 1, Math.floor(nowMs));
  replaceFile(file, `${next}\n`);
  syncDir(dir);
  return next;
}

/** Replace a file atomically: temp file, fsync, rename (the caller syncs the directory). */
function replaceFile(file: string, text: string): void {
  const temp = `${file}.tmp`;
  writeFileSync(temp, text);
  const tempFd = openSync(temp, 'r+');
  try {
    fsyncSync(tempFd);
  } finally {
    closeSync(tempFd);
  }
  renameSync(temp, file);
}

function storageFailed(what: string, err: unknown): ChorusError {
  return new ChorusError('STORAGE_FAILED', `${what}: ${(err as Error).message}`);
}

function fileSize(file: string): number {
  return existsSync(file) ? statSync(file).size : 0;
}

function truncateFile(file: string, length: number): void {
  const fd = openSync(file, 'r+');
  try {
    ftruncateSync(fd, length);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** One daemon per data directory: a second one would corrupt the journal. */
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

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
