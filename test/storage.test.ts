/** Log files: group commit, snapshots, torn tails, and corruption reported by file and line. */
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import fc from 'fast-check';
import { emptyEngineState } from '../src/broadcast/recovery.js';
import type { JournalRecord } from '../src/broadcast/types.js';
import { ChatAssembly } from '../src/server/assembly.js';
import { encodeOp } from '../src/chat/operations.js';
import { messageCount } from '../src/chat/model.js';
import { messageRange } from '../src/server/groupQueries.js';
import { parseClusterConfig } from '../src/config/clusterConfig.js';
import { Daemon } from '../src/daemon/daemon.js';
import { silentLogger } from '../src/daemon/logger.js';
import { ChorusError } from '../src/errors.js';
import { nodeFileSystem, type FileSystem } from '../src/storage/fileSystem.js';
import { LogFiles } from '../src/storage/logFiles.js';
import { SyncThread } from '../src/storage/syncThread.js';
import { readLogFiles as readFiles } from '../src/storage/logReader.js';
import { journalLine, jsonParts } from '../src/storage/records.js';
import { freePorts } from '../src/tools/freePorts.js';
import { inspect, render } from '../src/tools/inspection.js';
import { waitUntil } from './support/processCluster.js';

const records: JournalRecord[] = [
  { t: 'msg', m: { sender: 1, seq: 1, ts: 1, payload: 'first "one"' } },
  { t: 'msg', m: { sender: 2, seq: 1, ts: 1, payload: 'second' } },
  { t: 'ts', tsVector: [1, 1, 3] },
];

const readLogFiles = (dir: string, id: number, n: number) => readFiles(nodeFileSystem, dir, id, n);

/** Make what was appended durable. */
function syncNow(files: LogFiles): Promise<void> {
  return new Promise((resolve, reject) => files.sync((error) => (error ? reject(error) : resolve())));
}

function errorOf(fn: () => unknown): ChorusError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ChorusError);
    return err as ChorusError;
  }
  throw new Error('expected an error');
}

describe('log files', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'chorus-storage-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const open = (id: number) => LogFiles.open({ fs: nodeFileSystem, dir, serverId: id, serverCount: 3, wallClockMs: Date.now() });

  function writeJournal(text: string): string {
    const file = join(dir, 'journal.0.jsonl');
    writeFileSync(file, text);
    return file;
  }

  it('appends JSON lines with group commit and reads them back', async () => {
    const { files } = open(3);
    files.append(records.slice(0, 2));
    files.append(records.slice(2));
    await syncNow(files);
    expect(files.syncs).to.equal(1);
    files.close();
    const text = readFileSync(join(dir, 'journal.0.jsonl'), 'utf8');
    expect(text.split('\n')[0]).to.equal('{"t":"msg","sender":1,"seq":1,"ts":1,"payload":"first \\"one\\""}');
    expect(readLogFiles(dir, 3, 3).records).to.deep.equal(records);
  });

  it('writes an operation (a JSON object on one line) into its journal line as it is, anything else as a string, and reads each back byte for byte', async () => {
    const op = encodeOp({ op: 'append', session: 's', user: 'bob', group: 'g', text: 'say "hi" \\ 👩‍💻 \u2028 \t' });
    const payloads = [op, '{ "spaced" : [1, 2] }', '{not JSON, but braced}', '{"two":\n"lines"}', 'plain', '{', '}', '', '"quoted"'];
    const { files } = open(3);
    files.append(payloads.map((payload, i) => ({ t: 'msg', m: { sender: 1, seq: i + 1, ts: i + 1, payload } })));
    await syncNow(files);
    files.close();
    const lines = readFileSync(join(dir, 'journal.0.jsonl'), 'utf8').split('\n');
    expect(lines[0]).to.equal(`{"t":"msg","sender":1,"seq":1,"ts":1,"op":${op}}`);
    expect(JSON.parse(lines[0]).op).to.deep.equal(JSON.parse(op));
    expect(lines[2]).to.equal('{"t":"msg","sender":1,"seq":3,"ts":3,"op":{not JSON, but braced}}');
    expect(lines[3], 'a line break makes it a string').to.equal('{"t":"msg","sender":1,"seq":4,"ts":4,"payload":"{\\"two\\":\\n\\"lines\\"}"}');
    expect(readLogFiles(dir, 3, 3).records.map((r) => (r.t === 'msg' ? r.m.payload : r.t))).to.deep.equal(payloads);
  });

  it('reports an operation line cut or garbled in the middle of the journal by file and line', () => {
    const good = journalLine({ t: 'msg', m: { sender: 2, seq: 1, ts: 1, payload: '{"op":"leave","session":"s"}' } });
    for (const [bad, why] of [
      ['{"t":"msg","sender":2,"seq":2,"ts":2,"op":{"op":"leave"', "the message's operation does not end the line"],
      ['{"t":"msg","sender":2,"seq":2,"ts":2,"op":"leave"}', "the message's operation is not an object"],
      ['{"t":"msg","sender":9,"seq":2,"ts":2,"op":{}}', 'sender 9 is not a server 1-3'],
      ['{"t":"msg","sender":2,"seq":0,"ts":2,"op":{}}', 'seq and ts must be positive'],
      ['{"t":"msg","sender":2,', 'not valid JSON'],
    ]) {
      const file = writeJournal(`${good}${bad}\n${journalLine({ t: 'ts', tsVector: [1, 2, 2] })}`);
      const error = errorOf(() => readLogFiles(dir, 3, 3));
      expect(error.code, bad).to.equal('LOG_CORRUPT');
      expect(error.message, bad).to.equal(`${file}:2: ${why}`);
    }
  });

  it('what is appended while an fdatasync runs goes into the next one; syncs finish in the order asked for', async () => {
    // A disk whose fdatasync finishes later, as on the thread pool.
    const laterSync: FileSystem = { ...nodeFileSystem, fdatasync: (file, done) => setImmediate(() => nodeFileSystem.fdatasync(file, done)) };
    const { files } = LogFiles.open({ fs: laterSync, dir, serverId: 3, serverCount: 3, wallClockMs: Date.now() });
    const finished: string[] = [];
    const syncAs = (name: string) => new Promise<void>((resolve) => files.sync(() => resolve(void finished.push(name))));
    files.append(records.slice(0, 1));
    const first = syncAs('first');
    expect(files.idle).to.equal(false);
    files.append(records.slice(1, 2));
    const second = syncAs('second');
    files.append(records.slice(2));
    const third = syncAs('third');
    await Promise.all([first, second, third]);
    expect(finished).to.deep.equal(['first', 'second', 'third']);
    expect(files.syncs).to.equal(2);
    expect(files.idle).to.equal(true);
    files.close();
    expect(readLogFiles(dir, 3, 3).records).to.deep.equal(records);
  });

  it("the journal's fdatasync: on its own thread until the disk proves sound, then on the event loop until a sync is slow; on the thread it finishes within the wait before the call returns, or later, in the order asked for; a failure names its errno", async () => {
    const file = openSync(join(dir, 'synced'), 'a');
    try {
      // A sound disk (any sync under 10 s; two in a row are enough): syncs start on the thread, the
      // event loop waiting (5 s here, so each finishes before the call returns), then move to the event loop.
      const syncs = new SyncThread({ slowMs: 10_000, blockMs: 5000, fastMs: 10_000, fastRun: 2 });
      const finishedInside: boolean[] = [];
      const syncOnce = (thread: SyncThread) => {
        let finished = false;
        thread.fdatasync(file, (error) => (finished = error === undefined));
        finishedInside.push(finished);
      };
      expect(syncs.slowDisk).to.equal(true);
      // Started before the first sync, as a daemon does (a second start changes nothing).
      syncs.start();
      syncs.start();
      syncOnce(syncs);
      expect(syncs.slowDisk).to.equal(true);
      syncOnce(syncs);
      expect(syncs.slowDisk).to.equal(false);
      syncOnce(syncs);
      expect(finishedInside).to.deep.equal([true, true, true]);
      // A disk slow from the start (every sync counts as slow, none as fast): syncs stay on the thread; the log hears of it once.
      const slow = new SyncThread({ slowMs: 0, blockMs: 5000, fastMs: 0, fastRun: 1 });
      const news: string[] = [];
      slow.onNews((heard) => news.push(heard.disk));
      syncOnce(slow);
      syncOnce(slow);
      expect(slow.slowDisk).to.equal(true);
      expect(news).to.deep.equal(['slow']);
      // Once on the event loop, one slow sync sends them back to the thread (here every sync is both fast and slow).
      const flipping = new SyncThread({ slowMs: 0, blockMs: 5000, fastMs: 10_000, fastRun: 1 });
      syncOnce(flipping);
      expect(flipping.slowDisk).to.equal(false);
      syncOnce(flipping);
      expect(flipping.slowDisk).to.equal(true);
      // On the thread with no wait at all: the event loop goes on, and each sync finishes later, in order.
      const noWait = new SyncThread({ slowMs: 0, blockMs: 0, fastMs: 0, fastRun: 1000 });
      noWait.fdatasync(file, () => undefined);
      const finished: (string | undefined)[] = [];
      const all = Array.from({ length: 20 }, (_, i) => new Promise<void>((resolve) => noWait.fdatasync(i === 7 ? 1_000_000 : file, (error) => resolve(void finished.push((error as NodeJS.ErrnoException | undefined)?.code ?? String(i))))));
      await Promise.all(all);
      expect(finished).to.deep.equal(Array.from({ length: 20 }, (_, i) => (i === 7 ? 'EBADF' : String(i))));
    } finally {
      closeSync(file);
    }
  });

  it('a snapshot replaces the journal atomically with the next generation', async () => {
    const { files } = open(3);
    files.append(records);
    await syncNow(files);
    const engine = {
      lastSeq: 0,
      contiguous: [1, 1, 0],
      tsVector: [1, 1, 3],
      seqMatrix: [[0, 0, 0], [0, 0, 0], [1, 1, 0]],
      tsMatrix: [[0, 0, 0], [0, 0, 0], [1, 1, 3]],
      collectedUpTo: [0, 0, 0],
      stableTs: 1,
      messages: records.flatMap((r) => (r.t === 'msg' ? [r.m] : [])),
    };
    files.writeSnapshot(engine, { chat: 'state' });
    files.close();
    expect(readdirSync(dir).sort()).to.deep.equal(['incarnation', 'journal.1.jsonl', 'snapshot.json']);
    const loaded = readLogFiles(dir, 3, 3);
    expect(loaded.generation).to.equal(1);
    expect(loaded.snapshot?.engine).to.deep.equal(engine);
    expect(loaded.snapshot?.app).to.deep.equal({ chat: 'state' });
    expect(loaded.records).to.deep.equal([]);
  });

  it('reports a torn last line and cuts it off on open', () => {
    const good = '{"t":"ts","tsVector":[1,0,0]}\n';
    const file = writeJournal(`${good}{"t":"msg","sender":1,"se`);
    const loaded = readLogFiles(dir, 1, 3);
    expect(loaded.records).to.have.length(1);
    expect(loaded.tornTail).to.deep.equal({ line: 2, offset: good.length, bytes: 25 });
    open(1).files.close();
    expect(readFileSync(file, 'utf8')).to.equal(good);
  });

  it('stops on a corrupt line that is not the last, naming file and line', () => {
    const file = writeJournal('{"t":"ts","tsVector":[1,0,0]}\n{"t":"ts","tsVe\n{"t":"ts","tsVector":[2,0,0]}\n');
    const err = errorOf(() => readLogFiles(dir, 1, 3));
    expect(err.code).to.equal('LOG_CORRUPT');
    expect(err.message).to.equal(`${file}:2: not valid JSON`);
  });

  it('stops on a record of the wrong shape, naming file and line', () => {
    const file = writeJournal('{"t":"ts","tsVector":[1,0]}\n');
    expect(errorOf(() => readLogFiles(dir, 1, 3)).message).to.equal(`${file}:1: tsVector has 2 entries, expected 3`);
    writeJournal('{"t":"ts","tsVector":[1,0,0]}\n{"t":"vote"}\n');
    expect(errorOf(() => readLogFiles(dir, 1, 3)).message).to.equal(`${file}:2: unknown record type "vote"`);
    writeJournal('{"t":"msg","sender":4,"seq":1,"ts":1,"payload":"x"}\n');
    expect(errorOf(() => readLogFiles(dir, 1, 3)).message).to.equal(`${file}:1: sender 4 is not a server 1-3`);
  });

  it('stops on a snapshot of another server or a damaged snapshot', () => {
    const { files } = open(2);
    files.writeSnapshot(
      { lastSeq: 0, contiguous: [0, 0, 0], tsVector: [0, 0, 0], seqMatrix: [[0, 0, 0], [0, 0, 0], [0, 0, 0]], tsMatrix: [[0, 0, 0], [0, 0, 0], [0, 0, 0]], collectedUpTo: [0, 0, 0], stableTs: 0, messages: [] },
      null,
    );
    files.close();
    const snapshot = join(dir, 'snapshot.json');
    expect(errorOf(() => readLogFiles(dir, 1, 3)).message).to.equal(`${snapshot}:1: snapshot belongs to server 2, not server 1`);
    writeFileSync(snapshot, readFileSync(snapshot, 'utf8').replace('"generation":1,\n', '"generation":1\n'));
    const err = errorOf(() => readLogFiles(dir, 2, 3));
    expect(err.code).to.equal('LOG_CORRUPT');
    expect(err.message).to.match(new RegExp(`^${snapshot}:6: not valid JSON`));
  });

  it('stops when a journal does not continue the snapshot and the journals before it (a snapshot or journal was lost)', () => {
    writeFileSync(join(dir, 'journal.4.jsonl'), '');
    expect(errorOf(() => readLogFiles(dir, 1, 3)).message).to.match(/journal\.4\.jsonl:1: journal generation 4 does not continue the snapshot \(generation 0\): journal\.0\.jsonl is missing/);
    writeFileSync(join(dir, 'journal.0.jsonl'), '');
    expect(errorOf(() => readLogFiles(dir, 1, 3)).message).to.match(/journal\.4\.jsonl:1: .* and journal 0: journal\.1\.jsonl is missing/);
  });

  it('a snapshot written in slices: the journal goes on in the next generation meanwhile, and a crash before it is durable loses nothing', async () => {
    const { files } = open(3);
    files.append(records.slice(0, 2));
    await syncNow(files);
    const engine = { ...emptyEngineState(3), contiguous: [1, 1, 0], tsVector: [1, 1, 1], messages: records.flatMap((r) => (r.t === 'msg' ? [r.m] : [])) };
    const app = { groups: { big: Array.from({ length: 20_000 }, (_, i) => ({ n: i, text: 'x'.repeat(20) })) } };
    const durable = new Promise<void>((resolve, reject) => files.beginSnapshot(engine, app, (error) => (error ? reject(error) : resolve())));
    files.append(records.slice(2));
    await syncNow(files);
    let slices = 1;
    while (files.continueSnapshot()) slices++;
    expect(slices, 'slices written').to.be.greaterThan(1);
    // Stopped as a crash would before the snapshot is durable: the snapshot before it and both journals, in order.
    const crashed = readLogFiles(dir, 3, 3);
    expect(crashed.snapshot).to.equal(undefined);
    expect(crashed.records).to.deep.equal(records);
    expect(crashed.journals.map((j) => [basename(j.file), j.records])).to.deep.equal([['journal.0.jsonl', 2], ['journal.1.jsonl', 1]]);
    // tools/inspect says so.
    expect(render(inspect(dir, 3, 3))).to.match(/no snapshot, 3 journal records after it in 2 journals \(a snapshot was being written when the daemon stopped\)/);
    await durable;
    files.close();
    expect(readdirSync(dir).sort()).to.deep.equal(['incarnation', 'journal.1.jsonl', 'snapshot.json']);
    const loaded = readLogFiles(dir, 3, 3);
    expect(loaded.generation).to.equal(1);
    expect(loaded.snapshot?.engine).to.deep.equal(engine);
    expect(loaded.snapshot?.app).to.deep.equal(app);
    expect(loaded.records).to.deep.equal(records.slice(2));
  });

  it('after a crash during a snapshot, the next snapshot replaces every journal before it', async () => {
    let { files } = open(3);
    files.append(records.slice(0, 2));
    await syncNow(files);
    files.beginSnapshot(emptyEngineState(3), null, () => undefined);
    files.append(records.slice(2));
    await syncNow(files);
    files.abandon();
    writeFileSync(join(dir, 'journal.0.jsonl'), '{"t":"ts","tsVector":[1,1,1]}\n{"t":"ts"');
    expect(errorOf(() => readLogFiles(dir, 3, 3)).message).to.match(/journal\.0\.jsonl:2: the last line is cut short, but journal\.1\.jsonl continues this journal/);
    writeFileSync(join(dir, 'journal.0.jsonl'), '');
    ({ files } = open(3));
    expect(readdirSync(dir).sort(), 'the temporary snapshot file is gone').to.deep.equal(['LOCK', 'incarnation', 'journal.0.jsonl', 'journal.1.jsonl']);
    files.append(records.slice(0, 1));
    await syncNow(files);
    expect(readLogFiles(dir, 3, 3).records).to.deep.equal([records[2], records[0]]);
    files.writeSnapshot(emptyEngineState(3), null);
    files.close();
    expect(readdirSync(dir).sort()).to.deep.equal(['incarnation', 'journal.2.jsonl', 'snapshot.json']);
  });

  it('a snapshot in parts is the JSON of the state, whatever its shape', () => {
    const history = { toJSON: () => ({ chunks: [[{ n: 1 }], [{ n: 2, likes: ['a'] }]], count: 2 }) };
    const values: unknown[] = [null, 0, 'text "quoted"', [], {}, [[1, [2]], undefined, { a: undefined, b: () => 1 }], { history, nested: { deeper: [{ x: 1 }] } }];
    for (const value of values) expect(JSON.parse([...jsonParts(value)].join('')), JSON.stringify(value)).to.deep.equal(JSON.parse(JSON.stringify(value) ?? 'null'));
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(JSON.parse([...jsonParts(value)].join(''))).to.deep.equal(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a data directory that another daemon holds', () => {
    const { files } = open(1);
    try {
      expect(errorOf(() => open(1)).message).to.match(/already in use by a daemon in this process/);
    } finally {
      files.close();
    }
  });

  it('a daemon refuses to start on a journal whose messages do not follow in sequence, naming file and line', async () => {
    const ports = await freePorts(6);
    const config = parseClusterConfig(ports.map((p, i) => (i % 2 === 0 ? `127.0.0.1 ${p} ${ports[i + 1]}` : '')).join('\n'), 'test-config');
    const file = writeJournal('{"t":"ts","tsVector":[0,0,0]}\n{"t":"msg","sender":2,"seq":2,"ts":5,"payload":"x"}\n');
    try {
      await Daemon.start({ id: 1, config, dataDir: dir, logger: silentLogger(), clusterKey: randomBytes(32) });
      throw new Error('expected the daemon to refuse');
    } catch (err) {
      expect(err).to.be.instanceOf(ChorusError);
      expect((err as Error).message).to.equal(`${file}:2: message 2:2 out of sequence (expected seq 1)`);
    }
    // The refusal released the directory: a fixed journal starts.
    writeJournal('');
    const daemon = await Daemon.start({ id: 1, config, dataDir: dir, logger: silentLogger(), clusterKey: randomBytes(32) });
    await daemon.stop();
  });
});

describe('a step that makes 200,000 messages stable at once', function () {
  this.timeout(120_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'chorus-storage-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  // A restart whose journal holds that many unstable messages: the clock and bounds recorded
  // after them make them all stable in the first step, as a heal after a long lopsided
  // partition does. Spreading such a step's messages into a call's arguments throws a
  // RangeError, and every relaunch would repeat it.
  it('a daemon restarts from a journal holding 200,000 unstable messages that its first step makes stable', async () => {
    const count = 200_000;
    const ports = await freePorts(6);
    const config = parseClusterConfig(ports.map((p, i) => (i % 2 === 0 ? `127.0.0.1 ${p} ${ports[i + 1]}` : '')).join('\n'), 'test-config');
    const lines = [journalLine({ t: 'msg', m: { sender: 2, seq: 1, ts: 1, payload: encodeOp({ op: 'join', session: 's', user: 'bob', group: 'g' }) } })];
    for (let seq = 2; seq <= count; seq++) {
      lines.push(journalLine({ t: 'msg', m: { sender: 2, seq, ts: seq, payload: encodeOp({ op: 'append', session: 's', user: 'bob', group: 'g', text: `message ${seq}` }) } }));
    }
    lines.push(journalLine({ t: 'ts', tsVector: [count + 1, count + 1, count + 1] }));
    writeFileSync(join(dir, 'journal.0.jsonl'), lines.join(''));
    const assembly = new ChatAssembly({ fs: nodeFileSystem, dir });
    const daemon = await Daemon.start({ id: 1, config, dataDir: dir, logger: silentLogger(), clusterKey: randomBytes(32), application: assembly.application });
    try {
      const { app } = assembly.attach(daemon.node);
      expect(daemon.node.protocol.stableTs).to.be.at.least(count);
      expect(daemon.node.protocol.unstableCount).to.equal(0);
      // The application is fed once the step's records are durable (an fdatasync on the thread pool).
      await waitUntil(() => daemon.node.appliedStableTs >= count, 20_000, 'the first step applied');
      expect(messageCount(app.replica.stableState().groups.g)).to.equal(count - 1);
      expect(messageCount(app.shown().groups.g)).to.equal(count - 1);
      // All of them stored in the history segments, and read back from there.
      app.snapshot();
      expect(app.shown().groups.g.tail.count).to.equal(0);
      expect(app.store.count('g')).to.equal(count - 1);
      expect(messageRange(app.shown().groups.g, count - 3, count, app.store).map(({ message }) => message.text)).to.deep.equal([`message ${count - 1}`, `message ${count}`]);
    } finally {
      await daemon.stop();
    }
  });
});
