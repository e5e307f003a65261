/**
 * The JSON forms of what the log files hold, and their validation. Reading a
 * log file trusts nothing: every record is checked here before the engine
 * sees it, and a mismatch names what is wrong.
 */
import type { EngineState } from '../broadcast/recovery.js';
import type { JournalRecord, Message } from '../broadcast/types.js';

export const snapshotFormat = 'chorus-snapshot';
export const snapshotVersion = 1;

export interface SnapshotFile {
  readonly format: typeof snapshotFormat;
  readonly version: typeof snapshotVersion;
  readonly serverId: number;
  readonly serverCount: number;
  /** The journal that continues this snapshot is journal.<generation>.jsonl. */
  readonly generation: number;
  readonly engine: EngineState;
  /** The application's (chat) state after every message with ts <= engine.stableTs. */
  readonly app: unknown;
}

/**
 * A journal line: `{"t":"msg","sender":..,"seq":..,"ts":..,"op":{...}}` for
 * a message whose payload is a JSON object on one line (every chat
 * operation), written as it is; `{..."payload":"..."}` for any other
 * payload, as a JSON string; `{"t":"ts","tsVector":[...]}`; or
 * `{"t":"acks","seqMatrix":[...],"tsMatrix":[...]}`. (Escaping an
 * operation into a string cost more than the rest of the line and made a
 * copy of it for the garbage collector: 0.8-0.95 against 0.23 µs per
 * 300-byte line, for every message at every server.) The reader takes an
 * `op`'s text back byte for byte without parsing it, so a payload is never
 * changed by the trip, whatever it holds.
 */
export function journalLine(record: JournalRecord): string {
  if (record.t === 'msg') {
    const m = record.m;
    const head = `{"t":"msg","sender":${m.sender},"seq":${m.seq},"ts":${m.ts}`;
    return writtenAsIs(m.payload) ? `${head},"op":${m.payload}}\n` : `${head},"payload":${JSON.stringify(m.payload)}}\n`;
  }
  if (record.t === 'acks') return `{"t":"acks","seqMatrix":${JSON.stringify(record.seqMatrix)},"tsMatrix":${JSON.stringify(record.tsMatrix)}}\n`;
  return `{"t":"ts","tsVector":[${record.tsVector.join(',')}]}\n`;
}

/**
 * A snapshot file's text in parts, in order: the engine's messages one per
 * line, the application's state as jsonParts gives it. Written a slice at a
 * time (snapshotWriter.ts), so no part is larger than one message or entry.
 */
export function* snapshotParts(snapshot: SnapshotFile): Generator<string> {
  const { messages, ...engine } = snapshot.engine;
  const head = [`"format":${JSON.stringify(snapshot.format)}`, `"version":${snapshot.version}`, `"serverId":${snapshot.serverId}`, `"serverCount":${snapshot.serverCount}`, `"generation":${snapshot.generation}`];
  yield `{${head.join(',\n')},\n"engine":${JSON.stringify(engine).slice(0, -1)},"messages":[\n`;
  for (let i = 0; i < messages.length; i++) yield `${i > 0 ? ',\n' : ''}${JSON.stringify(messages[i])}`;
  yield '\n]},\n"app":';
  yield* jsonParts(snapshot.app ?? null);
  yield '\n}\n';
}

/** Array elements serialised together by one JSON.stringify call (a chat history chunk's worth). */
const arrayBatch = 256;

/**
 * JSON.stringify(value) in parts: objects key by key, arrays a line per
 * batch of elements (nested arrays split again), so a state of any size is
 * serialised in small steps, most of it by JSON.stringify itself. toJSON is
 * honoured, as JSON.stringify does.
 */
export function* jsonParts(value: unknown): Generator<string> {
  const v = hasToJson(value) ? value.toJSON() : value;
  if (Array.isArray(v)) {
    yield '[';
    for (let i = 0; i < v.length; i += arrayBatch) {
      const batch = v.slice(i, i + arrayBatch);
      if (i > 0) yield ',\n';
      if (batch.some(Array.isArray)) yield* elementParts(batch);
      else yield JSON.stringify(batch).slice(1, -1);
    }
    yield ']';
    return;
  }
  if (typeof v !== 'object' || v === null) {
    yield JSON.stringify(v) ?? 'null';
    return;
  }
  yield '{';
  let first = true;
  for (const key of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[key];
    if (x === undefined || typeof x === 'function' || typeof x === 'symbol') continue;
    yield `${first ? '' : ','}${JSON.stringify(key)}:`;
    first = false;
    yield* jsonParts(x);
  }
  yield '}';
}

function* elementParts(elements: readonly unknown[]): Generator<string> {
  for (let i = 0; i < elements.length; i++) {
    if (i > 0) yield ',\n';
    if (Array.isArray(elements[i])) yield* jsonParts(elements[i]);
    else yield JSON.stringify(elements[i]) ?? 'null';
  }
}

function hasToJson(value: unknown): value is { toJSON(): unknown } {
  return typeof value === 'object' && value !== null && typeof (value as { toJSON?: unknown }).toJSON === 'function';
}

export class RecordError extends Error {}

const openBrace = 0x7b;
const closeBrace = 0x7d;

/** Whether a payload goes into its journal line as it is: it looks like a JSON object and has no line break. */
function writtenAsIs(payload: string): boolean {
  return payload.charCodeAt(0) === openBrace && payload.charCodeAt(payload.length - 1) === closeBrace && !payload.includes('\n');
}

/** The start of a line journalLine wrote with the payload as it is; the payload runs from after it to the line's last `}`. */
const asIsHead = /^\{"t":"msg","sender":(\d{1,15}),"seq":(\d{1,15}),"ts":(\d{1,15}),"op":/;

/** A journal line's record (the line without its newline). */
export function parseJournalLine(line: string, serverCount: number): JournalRecord {
  const head = asIsHead.exec(line);
  if (head === null) return parseJournalRecord(parseJson(line), serverCount);
  if (line.charCodeAt(line.length - 1) !== closeBrace) throw new RecordError('the message\'s operation does not end the line');
  const payload = line.slice(head[0].length, -1);
  if (!writtenAsIs(payload)) throw new RecordError('the message\'s operation is not an object');
  return { t: 'msg', m: message({ sender: Number(head[1]), seq: Number(head[2]), ts: Number(head[3]), payload }, serverCount) };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new RecordError('not valid JSON');
  }
}

function parseJournalRecord(value: unknown, serverCount: number): JournalRecord {
  const obj = object(value, 'record');
  if (obj.t === 'msg') return { t: 'msg', m: message(obj, serverCount) };
  if (obj.t === 'ts') return { t: 'ts', tsVector: vector(obj.tsVector, serverCount, 'tsVector') };
  if (obj.t === 'acks') return { t: 'acks', seqMatrix: matrix(obj.seqMatrix, serverCount, 'seqMatrix'), tsMatrix: matrix(obj.tsMatrix, serverCount, 'tsMatrix') };
  throw new RecordError(`unknown record type ${JSON.stringify(obj.t)}`);
}

export function parseSnapshot(value: unknown, serverId: number, serverCount: number): SnapshotFile {
  const obj = object(value, 'snapshot');
  if (obj.format !== snapshotFormat) throw new RecordError(`not a Chorus snapshot (format ${JSON.stringify(obj.format)})`);
  if (obj.version !== snapshotVersion) throw new RecordError(`snapshot version ${JSON.stringify(obj.version)} is not supported (expected ${snapshotVersion})`);
  if (obj.serverId !== serverId) throw new RecordError(`snapshot belongs to server ${JSON.stringify(obj.serverId)}, not server ${serverId}`);
  if (obj.serverCount !== serverCount) {
    throw new RecordError(`snapshot is for a cluster of ${JSON.stringify(obj.serverCount)} servers, the configuration has ${serverCount}`);
  }
  const generation = count(obj.generation, 'generation');
  const e = object(obj.engine, 'engine');
  const engine: EngineState = {
    lastSeq: count(e.lastSeq, 'engine.lastSeq'),
    contiguous: vector(e.contiguous, serverCount, 'engine.contiguous'),
    tsVector: vector(e.tsVector, serverCount, 'engine.tsVector'),
    seqMatrix: matrix(e.seqMatrix, serverCount, 'engine.seqMatrix'),
    tsMatrix: matrix(e.tsMatrix, serverCount, 'engine.tsMatrix'),
    collectedUpTo: vector(e.collectedUpTo, serverCount, 'engine.collectedUpTo'),
    stableTs: count(e.stableTs, 'engine.stableTs'),
    messages: array(e.messages, 'engine.messages').map((m) => message(object(m, 'message'), serverCount)),
  };
  checkEngineState(engine, serverId);
  return { format: snapshotFormat, version: snapshotVersion, serverId, serverCount, generation, engine, app: obj.app };
}

/** The store must be exactly the messages after collectedUpTo, contiguous, up to contiguous. */
function checkEngineState(engine: EngineState, serverId: number): void {
  if (engine.contiguous[serverId - 1] !== engine.lastSeq) throw new RecordError('engine.lastSeq does not match its own entry of engine.contiguous');
  const next = engine.collectedUpTo.map((seq) => seq + 1);
  for (const m of engine.messages) {
    if (m.seq !== next[m.sender - 1]) throw new RecordError(`engine.messages: ${m.sender}:${m.seq} is out of sequence`);
    next[m.sender - 1]++;
  }
  next.forEach((seq, i) => {
    if (seq - 1 !== engine.contiguous[i]) throw new RecordError(`engine.messages: messages of server ${i + 1} do not reach engine.contiguous`);
  });
}

function message(obj: Record<string, unknown>, serverCount: number): Message {
  const sender = count(obj.sender, 'sender');
  if (sender < 1 || sender > serverCount) throw new RecordError(`sender ${sender} is not a server 1-${serverCount}`);
  const seq = count(obj.seq, 'seq');
  const ts = count(obj.ts, 'ts');
  if (seq < 1 || ts < 1) throw new RecordError('seq and ts must be positive');
  if (typeof obj.payload !== 'string') throw new RecordError('payload is not a string');
  return { sender, seq, ts, payload: obj.payload };
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RecordError(`${what} is not an object`);
  return value as Record<string, unknown>;
}

function array(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new RecordError(`${what} is not an array`);
  return value;
}

function count(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw new RecordError(`${what} is not a non-negative integer`);
  return value as number;
}

function vector(value: unknown, n: number, what: string): number[] {
  const items = array(value, what);
  if (items.length !== n) throw new RecordError(`${what} has ${items.length} entries, expected ${n}`);
  return items.map((x, i) => count(x, `${what}[${i}]`));
}

function matrix(value: unknown, n: number, what: string): number[][] {
  const rows = array(value, what);
  if (rows.length !== n) throw new RecordError(`${what} has ${rows.length} rows, expected ${n}`);
  return rows.map((row, i) => vector(row, n, `${what}[${i}]`));
}
