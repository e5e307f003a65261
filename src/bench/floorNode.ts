/**
 * The benchmark's latency floor: one of five processes doing only what any
 * design that persists before it sends must do, and nothing else (no
 * ordering, no chat, no JSON, no RPC). The origin appends a message to its
 * journal and fdatasyncs it (group commit: one sync for what a turn of the
 * event loop gathered), then sends it to the four others; each appends and
 * fdatasyncs it, then sends one acknowledgement to all. A message is stable
 * at a process once it is durable there and every other process has
 * acknowledged it (the origin by sending it). Chorus's own figure is set
 * beside this one: the distance between them is what its protocol and chat
 * cost. Run by tools/bench; prints one JSON line.
 *
 *   floorNode.js <id> <ports, comma-separated> <data dir> <start at (epoch ms)> <warm-up ms> <measure ms> <messages per second, this process> <payload bytes>
 */
import { createSocket } from 'node:dgram';
import { closeSync, fdatasyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface FloorNodeResult {
  /** Origin -> stable here, ms, of the messages created in the measured time. */
  readonly stableHere: { readonly p50: number; readonly p99: number; readonly max: number; readonly count: number };
  readonly groupCommitP50Ms: number;
  /** CPU time (user and system) this process used during the measured time. */
  readonly cpuMs: number;
  /** Messages this process originated during the measured time. */
  readonly originated: number;
}

const [idText, portsText, dir, startAtText, warmupText, measureText, rateText, bytesText] = process.argv.slice(2);
const me = Number(idText);
const ports = portsText.split(',').map(Number);
const others = ports.map((_, i) => i + 1).filter((id) => id !== me);
const startAt = Number(startAtText);
const measureFrom = startAt + Number(warmupText);
const measureUntil = measureFrom + Number(measureText);
const rate = Number(rateText);
const payload = Buffer.alloc(Number(bytesText), 120);

/** Milliseconds since the epoch, comparable across the processes of one machine. */
const now = () => performance.timeOrigin + performance.now();

const dataType = 1;
const ackType = 2;

interface Pending {
  createdAt: number;
  durableHere: boolean;
  readonly acked: Set<number>;
}

const pending = new Map<string, Pending>();
const samples: number[] = [];
const commitSamples: number[] = [];

mkdirSync(dir, { recursive: true });
const journal = openSync(join(dir, `floor${me}.log`), 'a');
let toWrite: Buffer[] = [];
let afterSync: (() => void)[] = [];

/** Append a record; `durable` runs once an fdatasync covers it (one sync per turn for all that came in it). */
function persist(record: Buffer, durable: () => void): void {
  toWrite.push(record);
  afterSync.push(durable);
  if (toWrite.length === 1) setImmediate(commit);
}

function commit(): void {
  const records = toWrite;
  const callbacks = afterSync;
  toWrite = [];
  afterSync = [];
  const start = performance.now();
  writeSync(journal, Buffer.concat(records));
  fdatasyncSync(journal);
  commitSamples.push(performance.now() - start);
  for (const callback of callbacks) callback();
}

const socket = createSocket('udp4');

function sendTo(id: number, packet: Buffer): void {
  socket.send(packet, ports[id - 1], '127.0.0.1');
}

function entry(origin: number, seq: number): Pending {
  const key = `${origin}:${seq}`;
  let p = pending.get(key);
  if (!p) {
    p = { createdAt: NaN, durableHere: false, acked: new Set() };
    pending.set(key, p);
  }
  return p;
}

function checkStable(origin: number, seq: number, p: Pending): void {
  if (!p.durableHere || p.acked.size < others.length || Number.isNaN(p.createdAt)) return;
  pending.delete(`${origin}:${seq}`);
  if (p.createdAt >= measureFrom && p.createdAt < measureUntil) samples.push(now() - p.createdAt);
}

/** DATA: type, origin, seq, created at, payload. */
function data(origin: number, seq: number, createdAt: number): Buffer {
  const header = Buffer.alloc(14);
  header.writeUInt8(dataType, 0);
  header.writeUInt8(origin, 1);
  header.writeUInt32BE(seq, 2);
  header.writeDoubleBE(createdAt, 6);
  return Buffer.concat([header, payload]);
}

/** ACK: type, from, origin, seq. */
function ack(origin: number, seq: number): Buffer {
  const packet = Buffer.alloc(7);
  packet.writeUInt8(ackType, 0);
  packet.writeUInt8(me, 1);
  packet.writeUInt8(origin, 2);
  packet.writeUInt32BE(seq, 3);
  return packet;
}

socket.on('message', (packet) => {
  if (packet[0] === dataType) {
    const origin = packet.readUInt8(1);
    const seq = packet.readUInt32BE(2);
    const p = entry(origin, seq);
    p.createdAt = packet.readDoubleBE(6);
    p.acked.add(origin);
    persist(packet, () => {
      p.durableHere = true;
      const answer = ack(origin, seq);
      for (const id of others) sendTo(id, answer);
      checkStable(origin, seq, p);
    });
    return;
  }
  const origin = packet.readUInt8(2);
  const seq = packet.readUInt32BE(3);
  const p = entry(origin, seq);
  p.acked.add(packet.readUInt8(1));
  checkStable(origin, seq, p);
});

let created = 0;

/** Originate what is due at `rate` per second since the start. */
function originate(): void {
  const due = Math.floor(((now() - startAt) * rate) / 1000);
  while (created < due) {
    const seq = ++created;
    const createdAt = now();
    const p = entry(me, seq);
    p.createdAt = createdAt;
    const packet = data(me, seq, createdAt);
    persist(packet, () => {
      p.durableHere = true;
      for (const id of others) sendTo(id, packet);
      checkStable(me, seq, p);
    });
  }
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

socket.bind(ports[me - 1], '127.0.0.1', () => {
  socket.setRecvBufferSize(8 * 1024 * 1024);
  setTimeout(() => {
    const timer = setInterval(originate, 1);
    setTimeout(() => clearInterval(timer), measureUntil - Date.now());
  }, Math.max(0, startAt - Date.now()));
  let measured = { cpuMs: 0, originated: 0 };
  setTimeout(() => {
    const cpuStart = process.cpuUsage();
    const createdStart = created;
    setTimeout(() => {
      const cpu = process.cpuUsage(cpuStart);
      measured = { cpuMs: (cpu.user + cpu.system) / 1000, originated: created - createdStart };
    }, measureUntil - measureFrom);
  }, measureFrom - Date.now());
  // Messages created near the end have a little longer to become stable.
  setTimeout(() => {
    const sorted = [...samples].sort((a, b) => a - b);
    const commits = [...commitSamples].sort((a, b) => a - b);
    const result: FloorNodeResult = {
      stableHere: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] ?? NaN, count: sorted.length },
      groupCommitP50Ms: percentile(commits, 0.5),
      ...measured,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    socket.close();
    closeSync(journal);
    process.exit(0);
  }, measureUntil - Date.now() + 1000);
});
