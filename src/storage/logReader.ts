/**
 * Reading a daemon's log files (logFiles.ts says what they are): the
 * snapshot and the journals that continue it, every record validated
 * (records.ts), every problem a LOG_CORRUPT or LOG_UNREADABLE error naming
 * the file and line. Changes nothing: the daemon, the simulator and the
 * inspector share it.
 */
import { join } from 'node:path';
import type { JournalRecord } from '../broadcast/types.js';
import { ChorusError } from '../errors.js';
import type { FileSystem } from './fileSystem.js';
import { parseJournalLine, parseSnapshot, RecordError, type SnapshotFile } from './records.js';

export const snapshotName = 'snapshot.json';
const journalPattern = /^journal\.(\d+)\.jsonl$/;
export function journalName(generation: number): string {
  return `journal.${generation}.jsonl`;
}

export interface LoadedLog {
  readonly snapshot?: SnapshotFile;
  /** The snapshot's generation: its journal is the first to replay. */
  readonly generation: number;
  /** The records of every journal from the snapshot's generation on, in order. */
  readonly records: JournalRecord[];
  /** recordLines[i] is the line of records[i] in its journal. */
  readonly recordLines: number[];
  /** The journals replayed, in order, with how many records each holds. */
  readonly journals: readonly { readonly file: string; readonly records: number }[];
  /** The last journal: the one the server appends to. */
  readonly journalFile: string;
  /** A last line of the last journal cut short by a crash: dropped, never replayed. */
  readonly tornTail?: { readonly line: number; readonly offset: number; readonly bytes: number };
  /** Journals of older generations left behind by a crash during a snapshot. */
  readonly staleJournals: string[];
}

/** Where records[index] is: "<journal file>:<line>". */
export function recordPlace(loaded: LoadedLog, index: number): string {
  let first = 0;
  for (const journal of loaded.journals) {
    if (index < first + journal.records) return `${journal.file}:${loaded.recordLines[index]}`;
    first += journal.records;
  }
  return `${loaded.journalFile}:${loaded.recordLines[index] ?? 1}`;
}

/** Read and validate a data directory without changing it (the daemon and the inspector share this). */
export function readLogFiles(fs: FileSystem, dir: string, serverId: number, serverCount: number): LoadedLog {
  const journalFile = (g: number) => join(dir, journalName(g));
  if (!fs.exists(dir)) return { generation: 0, records: [], recordLines: [], journals: [], journalFile: journalFile(0), staleJournals: [] };
  const snapshot = readSnapshot(fs, dir, serverId, serverCount);
  const generation = snapshot?.generation ?? 0;
  const generations = listJournals(fs, dir);
  const staleJournals = generations.filter((g) => g < generation).map(journalFile);
  // A snapshot being written when the server stopped leaves the journals after its own: each continues the one before.
  const chain = generations.filter((g) => g >= generation);
  if (chain.length === 0) return { snapshot, generation, records: [], recordLines: [], journals: [], journalFile: journalFile(generation), staleJournals };
  chain.forEach((g, i) => {
    const expected = generation + i;
    if (g === expected) return;
    throw new ChorusError(
      'LOG_CORRUPT',
      `${journalFile(g)}:1: journal generation ${g} does not continue the snapshot (generation ${generation})${i > 0 ? ` and journal ${expected - 1}` : ''}: ${journalName(expected)} is missing`,
    );
  });
  const records: JournalRecord[] = [];
  const recordLines: number[] = [];
  const journals: { file: string; records: number }[] = [];
  let tornTail: LoadedLog['tornTail'];
  for (const g of chain) {
    const file = journalFile(g);
    const read = readJournal(fs, file, serverCount);
    if (read.tornTail && g !== chain[chain.length - 1]) {
      throw new ChorusError('LOG_CORRUPT', `${file}:${read.tornTail.line}: the last line is cut short, but ${journalName(g + 1)} continues this journal`);
    }
    for (const record of read.records) records.push(record);
    for (const line of read.recordLines) recordLines.push(line);
    journals.push({ file, records: read.records.length });
    tornTail = read.tornTail;
  }
  return { snapshot, generation, records, recordLines, journals, journalFile: journalFile(chain[chain.length - 1]), tornTail, staleJournals };
}

export function listJournals(fs: FileSystem, dir: string): number[] {
  return fs
    .list(dir)
    .map((name) => journalPattern.exec(name))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => Number(match[1]))
    .sort((a, b) => a - b);
}

export function readText(fs: FileSystem, file: string): string {
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
      records.push(parseJournalLine(line, serverCount));
      recordLines.push(lineNo);
    } catch (err) {
      if (!(err instanceof RecordError)) throw err;
      throw new ChorusError('LOG_CORRUPT', `${file}:${lineNo}: ${err.message}`);
    }
  });
  if (tail === '') return { records, recordLines };
  const offset = Buffer.byteLength(text) - Buffer.byteLength(tail);
  return { records, recordLines, tornTail: { line: lines.length + 1, offset, bytes: Buffer.byteLength(tail) } };
}
