/** History segments (src/storage/segmentStore.ts): what is appended reads back, across files, crashes and reopens. */
import { expect } from 'chai';
import fc from 'fast-check';
import { ChorusError } from '../src/errors.js';
import { Random } from '../src/sim/random.js';
import { SimFileSystem } from '../src/sim/simFileSystem.js';
import { SegmentStore, streamDirName, type RecordCodec } from '../src/storage/segmentStore.js';
import { messageCodec } from '../src/server/historyStore.js';

interface Rec {
  readonly key: number;
  readonly text: string;
}

const codec: RecordCodec<Rec> = {
  encode: (r) => JSON.stringify(r),
  decode: (line) => {
    try {
      const v = JSON.parse(line) as Rec;
      return typeof v.key === 'number' && typeof v.text === 'string' ? v : undefined;
    } catch {
      return undefined;
    }
  },
};

const dir = '/data';
function disk(): SimFileSystem {
  const fs = new SimFileSystem(() => 0, () => 0);
  fs.makeDir(dir);
  return fs;
}
const open = (fs: SimFileSystem, counts: Record<string, number>, readOnly = false) =>
  SegmentStore.open({ fs, dir, codec, counts: new Map(Object.entries(counts)), segmentRecords: 4, ...(readOnly ? { readOnly } : {}) });
const byKey = (key: number) => (r: Rec) => r.key - key;
const segmentFile = (stream: string, start: number) => `${dir}/history/${streamDirName(stream)}/${String(start).padStart(10, '0')}.jsonl`;

describe('history segments', () => {
  it('read back what was appended, whole or in ranges, found by key, before and after syncs and reopens', () => {
    const step = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('append' as const), stream: fc.constantFrom('a', 'b', 'the "third" / group') }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('sync' as const) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 80 }), fc.nat(), (steps, probe) => {
        const fs = disk();
        let store = open(fs, {});
        const model = new Map<string, Rec[]>();
        let key = 0;
        let synced: Record<string, number> = {};
        for (const s of steps) {
          if (s.kind === 'append') {
            const record = { key: (key += 1 + (probe % 3)), text: `r${key}` };
            store.append(s.stream, record);
            model.set(s.stream, [...(model.get(s.stream) ?? []), record]);
          } else if (s.kind === 'sync') {
            store.sync();
            synced = Object.fromEntries([...model].map(([name, records]) => [name, records.length]));
          } else {
            // Reopened at the last synced counts: what was appended since is gone, as after a crash the journal replays it.
            store = open(fs, synced);
            for (const [name, records] of model) model.set(name, records.slice(0, synced[name] ?? 0));
          }
          for (const [name, records] of model) {
            expect(store.count(name)).to.equal(records.length);
            expect(store.read(name, 0, Infinity)).to.deep.equal(records);
            const from = records.length === 0 ? 0 : probe % records.length;
            expect(store.read(name, from, from + 5)).to.deep.equal(records.slice(from, from + 5));
            for (const [index, record] of records.entries()) expect(store.find(name, byKey(record.key), records.length)).to.deep.equal({ index, record });
            if (records.length > 0) expect(store.find(name, byKey(records[records.length - 1].key), records.length - 1)).to.equal(undefined);
            expect(store.find(name, byKey(0), Infinity)).to.equal(undefined);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('after a crash, reopened at the counts of the last sync: records past them, a torn line among them, are cut off', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const fs = disk();
      const store = open(fs, {});
      for (let key = 1; key <= 10; key++) store.append('g', { key, text: `r${key}` });
      store.sync();
      for (let key = 11; key <= 17; key++) store.append('g', { key, text: `r${key}` });
      store.append('h', { key: 1, text: 'only after the sync' });
      store.sync(); // written and durable, but the snapshot that would count them never was
      store.append('g', { key: 18, text: 'r18' });
      (store as unknown as { flush(): void }).flush();
      fs.crash(new Random(seed)); // the unsynced write: torn, whole or gone
      const reopened = open(fs, { g: 10 });
      expect(reopened.read('g', 0, Infinity).map((r) => r.key)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(reopened.count('h')).to.equal(0);
      expect(fs.readText(segmentFile('g', 8)).split('\n')).to.have.length(3);
      expect(fs.exists(segmentFile('g', 12))).to.equal(false);
      // Appending goes on from there, and survives the next reopen.
      for (let key = 11; key <= 14; key++) reopened.append('g', { key: key * 10, text: 'again' });
      reopened.sync();
      expect(open(fs, { g: 14 }).read('g', 8, Infinity).map((r) => r.key)).to.deep.equal([9, 10, 110, 120, 130, 140]);
    }
  });

  it('a record the counts include but the files lack, or a line that is not a record, is LOG_CORRUPT naming the file', () => {
    const fs = disk();
    const store = open(fs, {});
    for (let key = 1; key <= 9; key++) store.append('g', { key, text: `r${key}` });
    store.sync();
    expect(() => open(fs, { g: 12 })).to.throw(ChorusError, `${segmentFile('g', 8)}: holds 1 whole records, but the snapshot counts 4 in it`);
    fs.unlink(segmentFile('g', 4));
    expect(() => open(fs, { g: 9 })).to.throw(ChorusError, `${segmentFile('g', 4)}: missing`);
    const file = fs.open(segmentFile('g', 4), 'truncate');
    fs.write(file, Buffer.from('{"key":5,"text":"r5"}\nnot json\n{"key":7,"text":"r7"}\n{"key":8,"text":"r8"}\n'));
    fs.close(file);
    const corrupt = open(fs, { g: 9 });
    expect(corrupt.read('g', 0, 4).map((r) => r.key)).to.deep.equal([1, 2, 3, 4]);
    expect(() => corrupt.read('g', 4, 8))
      .to.throw(ChorusError, `${segmentFile('g', 4)}:2: not a history record`)
      .with.property('code', 'LOG_CORRUPT');
  });

  it('a disk that refuses writes (half written, then ENOSPC): appends go on, the sync before a snapshot reports it, and once the disk takes writes again every record is in the files once', () => {
    class FullDisk extends SimFileSystem {
      full = false;
      override write(file: number, data: Uint8Array): number {
        if (!this.full) return super.write(file, data);
        super.write(file, data.subarray(0, Math.floor(data.length / 2)));
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }
    }
    const fs = new FullDisk(() => 0, () => 0);
    fs.makeDir(dir);
    const store = SegmentStore.open({ fs, dir, codec, counts: new Map(), segmentRecords: 4, flushRecords: 3 });
    for (let key = 1; key <= 5; key++) store.append('g', { key, text: `r${key}` });
    fs.full = true;
    for (let key = 6; key <= 12; key++) store.append('g', { key, text: `r${key}` });
    expect(() => store.sync())
      .to.throw(ChorusError, /ENOSPC/)
      .with.property('code', 'STORAGE_FAILED');
    expect(store.read('g', 0, Infinity).map((r) => r.key)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    fs.full = false;
    store.sync();
    const lines = [0, 4, 8].flatMap((start) => fs.readText(segmentFile('g', start)).split('\n').filter(Boolean));
    expect(lines.map((line) => (JSON.parse(line) as Rec).key)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(open(fs, { g: 12 }).read('g', 0, Infinity)).to.have.length(12);
  });

  it('opened read-only (the log inspector), it changes no file and keeps appends in memory', () => {
    const fs = disk();
    const store = open(fs, {});
    for (let key = 1; key <= 6; key++) store.append('g', { key, text: `r${key}` });
    store.sync();
    const before = fs.readText(segmentFile('g', 4));
    const inspector = open(fs, { g: 5 }, true);
    inspector.append('g', { key: 60, text: 'replayed' });
    inspector.sync();
    expect(inspector.read('g', 0, Infinity).map((r) => r.key)).to.deep.equal([1, 2, 3, 4, 5, 60]);
    expect(fs.readText(segmentFile('g', 4))).to.equal(before);
  });
});

describe('history lines', () => {
  it('a message line is the JSON of the message, whatever its text holds: quotes, backslashes, control characters, lone or paired surrogates', () => {
    const text = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), fc.constantFrom('"', '\\', '\u0000', '\u001f', '\u2028', '\ud800', 'a\udfffb', '😀', 'é', 'x'.repeat(200)));
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 9 }), text, text, (ts, sender, user, body) => {
        const message = { ts, sender, user, text: body };
        const line = messageCodec.encode(message);
        expect(line).to.equal(JSON.stringify(message));
        expect(messageCodec.decode(Buffer.from(line).toString('utf8'))).to.deep.equal(message);
      }),
    );
  });
});
