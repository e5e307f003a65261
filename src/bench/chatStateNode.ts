/**
 * The benchmark's chat state machine alone: one daemon's chat application
 * (the replica, the reducer, the history files on the real disk, the order
 * digest) fed the total order as a node feeds it under load, with no
 * network, no journal and no RPC. Ten sessions join one group, then append
 * 200-character texts, each with its request id and doneBelow as the
 * client library sends them (a session's stream, 32 in flight), or without
 * (`bare`); each step hands over a batch of 50 newly ordered messages and
 * makes the previous batch stable, and the shown state is read after it (as
 * pushes read it). Each message's payload is decoded from its bytes as it
 * comes, as the wire decodes it. What it reports is one daemon's CPU per
 * message: every daemon does this for every message. Run by tools/bench;
 * prints one JSON line.
 *
 *   chatStateNode.js <data dir> <messages> [bare]
 */
import type { Message } from '../broadcast/types.js';
import { encodeOp } from '../chat/operations.js';
import { ChatApplication } from '../server/chatApplication.js';
import { nodeFileSystem } from '../storage/fileSystem.js';

export interface ChatStateNodeResult {
  messages: number;
  cpuMs: number;
  wallMs: number;
}

const batchMessages = 50;
const sessions = 10;
/** Appends a session has in flight: its doneBelow trails its latest request by this much. */
const inFlight = 32;
const text = 'x'.repeat(200);

/** The payloads of `count` appends, made before the clock starts (each a server's bytes, read by every daemon). */
function appendPayloads(count: number, bare: boolean): Buffer[] {
  const sent = new Array<number>(sessions).fill(0);
  return Array.from({ length: count }, (_, k) => {
    const s = k % sessions;
    const n = ++sent[s];
    const request = bare ? {} : { rid: `stream${s}:${n}`, ...(n > inFlight ? { done: n - inFlight } : {}) };
    return Buffer.from(encodeOp({ op: 'append', session: `s${s}`, user: `user${s}`, group: 'bench', text, ...request }));
  });
}

function run(dir: string, count: number, bare: boolean): ChatStateNodeResult {
  const app = new ChatApplication(undefined, { fs: nodeFileSystem, dir });
  const seqs = new Array<number>(6).fill(0);
  let ts = 0;
  const message = (k: number, payload: string): Message => {
    const sender = 1 + (k % 5);
    return { sender, seq: ++seqs[sender], ts: ++ts, payload };
  };
  const joins = Array.from({ length: sessions }, (_, k) => message(k, encodeOp({ op: 'join', session: `s${k}`, user: `user${k}`, group: 'bench' })));
  app.apply({ from: 0, messages: joins, added: joins }, joins);
  const appends = appendPayloads(count, bare);
  const cpu = process.cpuUsage();
  const start = performance.now();
  let tentative: Message[] = [];
  for (let i = 0; i < count; i += batchMessages) {
    const batch: Message[] = [];
    for (let k = i; k < Math.min(i + batchMessages, count); k++) batch.push(message(k, appends[k].toString('utf8')));
    app.apply({ from: tentative.length, messages: batch, added: batch }, tentative);
    app.shown();
    tentative = batch;
  }
  // eslint-disable-next-line prefer-spread -- the application's apply (no order change), not Function.prototype.apply
  app.apply(undefined, tentative);
  const used = process.cpuUsage(cpu);
  return { messages: count, cpuMs: (used.user + used.system) / 1000, wallMs: performance.now() - start };
}

const [dir, messages, path] = process.argv.slice(2);
const count = Number(messages);
if (!dir || !Number.isSafeInteger(count) || count < batchMessages || (path !== undefined && path !== 'bare')) {
  process.stderr.write(`usage: chatStateNode.js <data dir> <messages, at least ${batchMessages}> [bare]\n`);
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(run(dir, count, path === 'bare'))}\n`);
