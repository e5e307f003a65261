/**
 * What tools/inspect shows: a daemon's log files (running or not) read back
 * for a person or a program, and where two servers' files disagree.
 * It rebuilds the state exactly as the daemon does on restart, with the
 * same node core: the real engine replays the snapshot and the journal, the
 * node's first step hands the result to the real chat state machine. Its
 * journal and network go nowhere: it never writes to the files.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { engineOptions } from '../broadcast/options.js';
import { compareOrder, formatMessageId, type Message } from '../broadcast/types.js';
import { ChorusError } from '../errors.js';
import { Node } from '../node/node.js';
import type { Journal } from '../node/ports.js';
import { nodeFileSystem } from '../storage/fileSystem.js';
import { readLogFiles } from '../storage/logReader.js';
import { ChatAssembly } from '../server/assembly.js';
import { plainChatState } from '../server/groupQueries.js';

export interface Inspection {
  server: number;
  dir: string;
  snapshotGeneration: number;
  hasSnapshot: boolean;
  journalRecords: number;
  /** Journals replayed after the snapshot: more than one if a snapshot was being written when the daemon stopped. */
  journals: number;
  tornTail: { line: number; bytes: number } | null;
  lastSeq: number;
  clock: number;
  stableTs: number;
  seqVector: number[];
  tsVector: number[];
  seqMatrix: number[][];
  tsMatrix: number[][];
  /** Held messages in total order: stable ones await garbage collection, tentative ones await stability. */
  messages: { id: string; sender: number; seq: number; ts: number; state: 'stable' | 'tentative'; payload: string }[];
  /** Why garbage collection has not removed what is held. */
  waiting: { stability: string | null; acknowledgements: { sender: number; upToSeq: number; missingAt: number[] }[] };
  chat: ReturnType<typeof plainChatState>;
  digest: string;
}

/** Resolve `<id | dir>` to a directory and server id. */
export function locate(target: string, dataRoot: string): { dir: string; server: number } {
  if (/^\d+$/.test(target)) return { dir: join(dataRoot, `server${target}`), server: Number(target) };
  const match = /server(\d+)$/.exec(basename(target));
  if (!match) throw new ChorusError('INVALID_ARGUMENT', `cannot tell which server ${target} belongs to: give a server number, or a directory named server<id>`);
  return { dir: target, server: Number(match[1]) };
}

export function inspect(dir: string, server: number, serverCount: number): Inspection {
  if (!existsSync(dir)) throw new ChorusError('LOG_UNREADABLE', `${dir}: no such data directory`);
  const loaded = readLogFiles(nodeFileSystem, dir, server, serverCount);
  const assembly = new ChatAssembly({ fs: nodeFileSystem, dir, readOnly: true });
  const node = Node.recover({
    options: { engine: engineOptions(server, serverCount), snapshotJournalBytes: Infinity, snapshotIntervalMs: Infinity },
    loaded,
    journal: nowhere,
    transport: { send: () => undefined },
    clock: { now: () => 0, stepSoon: () => undefined, wakeAt: () => undefined },
    application: assembly.application,
  });
  const { app } = assembly.attach(node);
  const engine = node.protocol;
  const state = engine.exportState();
  const tentative = engine.tentative();
  const tentativeIds = new Set(tentative.map((m) => `${m.sender}:${m.seq}`));
  const held = [...state.messages].sort(compareOrder);
  return {
    server,
    dir,
    snapshotGeneration: loaded.generation,
    hasSnapshot: loaded.snapshot !== undefined,
    journalRecords: loaded.records.length,
    journals: loaded.journals.length,
    tornTail: loaded.tornTail ? { line: loaded.tornTail.line, bytes: loaded.tornTail.bytes } : null,
    lastSeq: state.lastSeq,
    clock: engine.clock,
    stableTs: engine.stableTs,
    seqVector: state.contiguous,
    tsVector: state.tsVector,
    seqMatrix: state.seqMatrix,
    tsMatrix: state.tsMatrix,
    messages: held.map((m) => ({
      id: formatMessageId(m),
      sender: m.sender,
      seq: m.seq,
      ts: m.ts,
      state: tentativeIds.has(`${m.sender}:${m.seq}`) ? 'tentative' : 'stable',
      payload: m.payload,
    })),
    waiting: waitingFor(state.messages, tentative, state.tsVector, state.seqMatrix),
    chat: plainChatState(app.shown(), app.store),
    digest: app.digest(),
  };
}

/** A journal that keeps nothing: the inspector only reads. */
const nowhere: Journal = {
  append: () => undefined,
  sync: (done) => done(),
  idle: true,
  beginSnapshot: () => undefined,
  continueSnapshot: () => false,
  snapshotInProgress: false,
  writeSnapshot: () => undefined,
  journalBytes: 0,
  journalRecords: 0,
  snapshotBytes: 0,
  syncs: 0,
  close: () => undefined,
  abandon: () => undefined,
};

function waitingFor(held: Message[], tentative: Message[], tsVector: number[], seqMatrix: number[][]): Inspection['waiting'] {
  let stability: string | null = null;
  if (tentative.length > 0) {
    const first = tentative[0];
    const behind = tsVector.map((ts, i) => (ts < first.ts ? i + 1 : 0)).filter((id) => id > 0);
    stability = `${tentative.length} tentative; the first (ts ${first.ts}) becomes stable once the clocks of servers {${behind.join(',')}} are known to pass it`;
  }
  const acknowledgements: Inspection['waiting']['acknowledgements'] = [];
  const bySender = new Map<number, number>();
  for (const m of held) bySender.set(m.sender, Math.max(bySender.get(m.sender) ?? 0, m.seq));
  for (const [sender, upToSeq] of [...bySender].sort((a, b) => a[0] - b[0])) {
    const missingAt = seqMatrix.map((row, k) => (row[sender - 1] < upToSeq ? k + 1 : 0)).filter((k) => k > 0);
    if (missingAt.length > 0) acknowledgements.push({ sender, upToSeq, missingAt });
  }
  return { stability, acknowledgements };
}

export function render(x: Inspection): string {
  const lines: string[] = [];
  const matrix = (m: number[][]) => m.map((row, k) => `    ${String(k + 1).padStart(2)} | ${row.map((v) => String(v).padStart(6)).join(' ')}`);
  lines.push(`server ${x.server}: ${x.dir}`);
  lines.push(
    `  files: ${x.hasSnapshot ? `snapshot generation ${x.snapshotGeneration}` : 'no snapshot'}, ${x.journalRecords} journal records after it` +
      (x.journals > 1 ? ` in ${x.journals} journals (a snapshot was being written when the daemon stopped)` : '') +
      (x.tornTail ? `, a torn last line (line ${x.tornTail.line}, ${x.tornTail.bytes} bytes) that the daemon drops` : ''),
  );
  lines.push(`  own seq ${x.lastSeq}, Lamport clock ${x.clock}, stable point: every message with ts <= ${x.stableTs}`);
  lines.push(`  seq vector (highest contiguous seq held, per sender): [${x.seqVector.join(', ')}]`);
  lines.push(`  ts vector (bound on each sender's missing messages): [${x.tsVector.join(', ')}]`);
  lines.push('  seq matrix (row k: what server k reported holding, per sender):');
  lines.push(...matrix(x.seqMatrix));
  lines.push('  ts matrix (row k: server k\'s bounds):');
  lines.push(...matrix(x.tsMatrix));
  lines.push(`  messages held, in total order (${x.messages.length}):`);
  if (x.messages.length === 0) lines.push('    (none: everything is stable and garbage-collected)');
  for (const m of x.messages) lines.push(`    ${m.id.padEnd(10)} ${`${m.sender}:${m.seq}`.padEnd(8)} ${m.state.padEnd(9)} ${m.payload}`);
  lines.push('  garbage collection waits for:');
  if (!x.waiting.stability && x.waiting.acknowledgements.length === 0) lines.push('    nothing');
  if (x.waiting.stability) lines.push(`    stability: ${x.waiting.stability}`);
  for (const a of x.waiting.acknowledgements) lines.push(`    acknowledgements of server ${a.sender}'s messages up to seq ${a.upToSeq} from servers {${a.missingAt.join(',')}}`);
  lines.push(`  chat state (digest ${x.digest}):`);
  const groups = Object.values(x.chat.groups);
  if (groups.length === 0) lines.push('    (no groups)');
  for (const g of groups) {
    const members = Object.values(g.members).map((m) => `${m.user} (via ${m.server})`);
    lines.push(`    group ${g.name}: ${members.length > 0 ? members.join(', ') : 'no members'}; ${g.messages.length} messages`);
    g.messages.forEach((m, i) => lines.push(`      ${String(i + 1).padStart(3)}. [${m.id}] ${m.user}: ${m.text}${m.likes.length > 0 ? `  (liked by ${m.likes.join(', ')})` : ''}`));
  }
  return lines.join('\n');
}

export function diff(a: Inspection, b: Inspection): string[] {
  const out: string[] = [];
  const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
  // Clocks and bounds are each server's own and differ freely; what must agree is what they hold and show.
  if (!same(a.seqVector, b.seqVector)) out.push(`seq vector: server ${a.server} holds ${JSON.stringify(a.seqVector)}, server ${b.server} holds ${JSON.stringify(b.seqVector)}`);
  const ids = (x: Inspection) => new Set(x.messages.map((m) => m.id));
  const onlyA = [...ids(a)].filter((id) => !ids(b).has(id));
  const onlyB = [...ids(b)].filter((id) => !ids(a).has(id));
  if (onlyA.length > 0) out.push(`messages held only by server ${a.server}: ${onlyA.join(', ')}`);
  if (onlyB.length > 0) out.push(`messages held only by server ${b.server}: ${onlyB.join(', ')}`);
  const names = new Set([...Object.keys(a.chat.groups), ...Object.keys(b.chat.groups)]);
  for (const name of [...names].sort()) {
    const ga = a.chat.groups[name];
    const gb = b.chat.groups[name];
    if (!ga || !gb) {
      out.push(`group ${name} exists only at server ${ga ? a.server : b.server}`);
      continue;
    }
    const n = Math.max(ga.messages.length, gb.messages.length);
    for (let i = 0; i < n; i++) {
      if (!same(ga.messages[i], gb.messages[i])) {
        out.push(`group ${name} first differs at message ${i + 1}: server ${a.server} has ${JSON.stringify(ga.messages[i] ?? null)}, server ${b.server} has ${JSON.stringify(gb.messages[i] ?? null)}`);
        break;
      }
    }
    if (!same(ga.members, gb.members)) out.push(`group ${name} members differ: ${JSON.stringify(ga.members)} vs ${JSON.stringify(gb.members)}`);
  }
  return out;
}

