/**
 * The deterministic simulator: one seed, one whole run. The daemon's own
 * node core, chat application and log-file code on a simulated network,
 * disk and clock, under a random schedule of loss, duplication, reordering,
 * symmetric and one-way partitions, crashes (losing unsynced writes, tearing
 * the journal, undoing names not yet durable), restarts and slow disks, while simulated
 * clients issue every kind of chat operation through the chat port of
 * different servers.
 *
 * Safety is checked during the run (SimCluster: stable prefixes agree; no
 * seq or timestamp reused, across restarts). Then everything heals and the
 * run must converge: same messages, same order, same chat state everywhere,
 * every confirmed operation present exactly once, stores collected to empty;
 * every answer a client got names a copy of its request in the final order
 * (a final answer the first copy, with its outcome there), every message
 * shown as stable is at its place, and each client's mirror, kept from
 * pushes, is the final history.
 */
import type { Message } from '../broadcast/types.js';
import { noStoredTargets } from '../chat/likes.js';
import { canonicalJson, emptyChatState } from '../chat/model.js';
import { applyBatch } from '../chat/reducer.js';
import type { StoredHistory } from '../server/historyStore.js';
import { messageRange, plainChatState } from '../server/groupQueries.js';
import { SimCluster, SimulationFailure, type SimBroken } from './cluster.js';
import { ClientRecords, SimClient } from './simClients.js';
import { Random } from './random.js';

export interface SimulationOptions {
  readonly seed: number;
  readonly serverCount?: number;
  /** Simulated time with faults on. */
  readonly faultPhaseMs?: number;
  /** Mean time between scheduled events (client operations and faults). */
  readonly eventGapMs?: number;
  /** TEST ONLY: run a deliberately broken variant of the engine, the executor or the log files. */
  readonly broken?: SimBroken;
}

export interface SimulationStats {
  faults: number;
  crashes: number;
  restarts: number;
  snapshots: number;
  operations: number;
  confirmed: number;
  stableMessages: number;
  /** Chat messages the final check read back from a server's history segments (the rest from memory). */
  storedMessages: number;
  simulatedMs: number;
  convergeMs: number;
  /** Answers the clients got, and how many of them final (wait "stable"). */
  answers: number;
  finalAnswers: number;
}

export interface SimulationResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly failure?: string;
  readonly stats: SimulationStats;
}

const clientCount = 6;
/** After the last push of a change, pushes that only mark messages stable wait up to 100 ms (rpc/endpoint.ts). */
const lastPushesMs = 300;
/** After the final heal, the cluster must converge within this much simulated time. */
const convergeLimitMs = 60_000;

/** tools/sim without --servers: seeds 1, 2, ... run 3, 4, ..., 9, 3, ... servers, so any seven seeds in a row cover every size. */
export function serversForSeed(seed: number): number {
  return 3 + ((((seed - 1) % 7) + 7) % 7);
}

export async function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
  const n = options.serverCount ?? 5;
  const seedRandom = new Random(options.seed ^ 0x5eed);
  // Each seed has a disk of its own speed: fdatasync from tens of microseconds to a few milliseconds.
  const slowestSyncMs = 0.1 + seedRandom.next() * 4;
  const cluster = new SimCluster({
    serverCount: n,
    seed: options.seed,
    faults: { loss: 0, duplicate: 0, minDelayMs: 0.05, jitterMs: 1 },
    syncDelayMs: [0.02, slowestSyncMs],
    engine: { statusIntervalMs: 50, viewTimeoutMs: 300, nackRetryMs: 20 },
    ...(options.broken ? { broken: options.broken } : {}),
  });
  const stats: SimulationStats = { faults: 0, crashes: 0, restarts: 0, snapshots: 0, operations: 0, confirmed: 0, stableMessages: 0, storedMessages: 0, simulatedMs: 0, convergeMs: 0, answers: 0, finalAnswers: 0 };
  const records = new ClientRecords();
  const clients = Array.from({ length: clientCount }, (_, i) => new SimClient(`u${i + 1}`, cluster, records));
  try {
    await faultPhase(cluster, clients, records, options, stats);
    const healedAt = cluster.now;
    healAll(cluster, stats);
    await converge(cluster, clients, records);
    stats.convergeMs = cluster.now - healedAt;
    checkConverged(cluster, stats, records);
    checkMirrors(cluster, clients);
    stats.simulatedMs = cluster.now;
    return { seed: options.seed, ok: true, stats };
  } catch (err) {
    stats.simulatedMs = cluster.now;
    const message = err instanceof SimulationFailure ? err.message : `${(err as Error).message}\nlast events:\n${cluster.trace.slice(-40).join('\n')}`;
    return { seed: options.seed, ok: false, failure: message, stats };
  }
}

async function faultPhase(cluster: SimCluster, clients: readonly SimClient[], records: ClientRecords, options: SimulationOptions, stats: SimulationStats): Promise<void> {
  const random = cluster.random;
  const n = cluster.config.serverCount;
  const end = options.faultPhaseMs ?? 3000;
  const gap = options.eventGapMs ?? 4;
  while (cluster.now < end) {
    await cluster.runUntil(cluster.now + random.next() * 2 * gap);
    if (records.failure) throw cluster.failure(records.failure);
    const roll = random.next();
    if (roll < 0.75) {
      random.pick(clients).act();
      continue;
    }
    stats.faults++;
    const up = cluster.servers.filter((x) => x.up).map((x) => x.id);
    const down = cluster.servers.filter((x) => !x.up).map((x) => x.id);
    if (roll < 0.79) {
      const groupsOf = splitServers(cluster, n);
      cluster.network.partition(groupsOf, n);
      cluster.log(`partition ${groupsOf.map((g) => g.join(',')).join(' | ')}`);
    } else if (roll < 0.81) {
      const from = random.int(1, n);
      const to = (from % n) + 1;
      cluster.network.cutOneWay(from, to);
      cluster.log(`cut ${from} -> ${to}`);
    } else if (roll < 0.86) {
      cluster.network.heal();
      cluster.log('heal the network');
    } else if (roll < 0.89) {
      const faults = { loss: random.next() * 0.3, duplicate: random.next() * 0.1, minDelayMs: 0.05, jitterMs: random.next() * 5 };
      cluster.network.faults = faults;
      cluster.log(`network loss ${(faults.loss * 100).toFixed(0)}%, duplication ${(faults.duplicate * 100).toFixed(0)}%, jitter ${faults.jitterMs.toFixed(1)} ms`);
    } else if (roll < 0.92 && up.length > 1) {
      // Most crashes strike while the disk is writing: right after a step whose records are not yet durable.
      const id = random.pick(up);
      if (random.chance(0.25)) cluster.crash(id);
      else cluster.crashWhileWriting(id);
      stats.crashes++;
    } else if (roll < 0.96) {
      if (down.length === 0) continue;
      cluster.restart(random.pick(down));
      stats.restarts++;
    } else if (roll < 0.965) {
      // Now and then a disk that takes up to 400 ms more per fdatasync, for up to 600 ms.
      cluster.slowDisk(random.int(1, n), 50 + random.next() * 350, 100 + random.next() * 500);
    } else if (up.length > 0) {
      const id = random.pick(up);
      if (cluster.snapshot(id)) {
        stats.snapshots++;
        cluster.log(`snapshot ${id}`);
      }
    }
  }
}

/** A random split into two groups (sometimes one server alone). */
function splitServers(cluster: SimCluster, n: number): number[][] {
  const left: number[] = [];
  const right: number[] = [];
  for (let id = 1; id <= n; id++) (cluster.random.chance(0.5) ? left : right).push(id);
  return [left, right].filter((g) => g.length > 0);
}

function healAll(cluster: SimCluster, stats: SimulationStats): void {
  cluster.network.heal();
  cluster.network.faults = { loss: 0, duplicate: 0, minDelayMs: 0.05, jitterMs: 0.5 };
  for (const server of cluster.servers) {
    server.crashWhileWriting = false;
    server.slowSyncMs = 0;
    if (!server.up) {
      cluster.restart(server.id);
      stats.restarts++;
    }
  }
  cluster.log('final heal: all servers up, no faults');
}

/**
 * Run until everything is stable and collected everywhere and every client
 * is connected with nothing in flight or waiting (a client that lost its
 * server connects to another and resends), then long enough for the last
 * pushes to reach the clients.
 */
async function converge(cluster: SimCluster, clients: readonly SimClient[], records: ClientRecords): Promise<void> {
  const deadline = cluster.now + convergeLimitMs;
  const settled = () => cluster.quiescent() && clients.every((c) => c.idle);
  while (!settled()) {
    if (records.failure) throw cluster.failure(records.failure);
    if (cluster.now >= deadline) throw cluster.failure(`not reached within ${convergeLimitMs} ms of simulated time: convergence after the final heal${busyClients(clients)}`);
    for (const client of clients) client.settle();
    await cluster.runUntilTrue(settled, 50, 'settling').catch(() => undefined);
  }
  await cluster.runUntil(cluster.now + lastPushesMs);
  if (records.failure) throw cluster.failure(records.failure);
}

/** Which clients still wait for something, if any: " (clients still busy: u3: 2 requests unanswered; ...)". */
function busyClients(clients: readonly SimClient[]): string {
  const busy = clients.filter((c) => !c.idle).map((c) => `${c.name}: ${c.busyWith()}`);
  return busy.length === 0 ? '' : ` (clients still busy: ${busy.join('; ')})`;
}

/**
 * Each client's mirror, kept from pushes (and the pages a too-large push
 * asks for), is the end of its group's final history, all stable. It may
 * hold fewer than it could: a tentative copy of a request that a heal
 * refuses leaves the history, and the window does not grow back by itself.
 */
function checkMirrors(cluster: SimCluster, clients: readonly SimClient[]): void {
  for (const client of clients) {
    const { mirror, server } = client.session;
    if (mirror.group === undefined) continue;
    const reader = cluster.server(Number(server)).service!.reader;
    const expected = reader.groupSnapshot(mirror.group, mirror.messages.length);
    const held = JSON.stringify({ total: mirror.total, participants: mirror.participants, messages: mirror.messages });
    const final = JSON.stringify({ total: expected.total, participants: expected.participants, messages: expected.messages });
    if (held !== final) throw cluster.failure(`client ${client.name}'s mirror of ${mirror.group} is not its final history: ${firstDifferenceOf(held, final)}`);
    if (mirror.total > 0 && mirror.messages.length === 0) throw cluster.failure(`client ${client.name}'s mirror of ${mirror.group} holds none of its ${mirror.total} messages`);
  }
}

function checkConverged(cluster: SimCluster, stats: SimulationStats, records: ClientRecords): void {
  const reference = cluster.globalStable;
  const key = (m: Pick<Message, 'sender' | 'seq'>) => `${m.sender}:${m.seq}`;
  const digests = new Set<string>();
  for (const server of cluster.servers) {
    if (server.stable.length !== reference.length) {
      throw cluster.failure(`server ${server.id} delivered ${server.stable.length} stable messages, the longest prefix has ${reference.length}`);
    }
    digests.add(server.app!.digest());
  }
  if (digests.size !== 1) throw cluster.failure(`orders differ after convergence: digests ${[...digests].join(', ')}`);
  // The digest covers the order; the states themselves, read back from each server's history files, must agree too.
  const states = new Set(cluster.servers.map((server) => canonicalJson(plainChatState(server.app!.shown(), server.app!.store))));
  if (states.size !== 1) throw cluster.failure(`chat states differ after convergence, with the same order (digest ${[...digests][0]})`);
  // And they must be the state of the final order applied at once in memory, with no history store, checkpoint or snapshot in between.
  const final = applyBatch(emptyChatState, reference, noStoredTargets);
  const expected = canonicalJson(plainChatState(final.state, inMemory));
  const [shown] = states;
  if (shown !== expected) throw cluster.failure(`the chat state every server shows is not the final order's (digest ${[...digests][0]}): ${firstDifferenceOf(shown, expected)}`);
  const count = new Map<string, number>();
  const payloads = new Map<string, string>();
  for (const m of reference) {
    count.set(key(m), (count.get(key(m)) ?? 0) + 1);
    payloads.set(key(m), m.payload);
  }
  for (const [k, c] of count) if (c > 1) throw cluster.failure(`message ${k} is in the total order ${c} times`);
  for (const server of cluster.servers) {
    for (const confirmed of server.confirmed) {
      if (payloads.get(key(confirmed)) !== confirmed.payload) {
        throw cluster.failure(`operation ${key(confirmed)} was confirmed to a client but is ${payloads.has(key(confirmed)) ? 'different' : 'missing'} in the final order: ${confirmed.payload}`);
      }
    }
  }
  const wrongAnswer = records.checkAnswers(reference, final.refusals);
  if (wrongAnswer) throw cluster.failure(wrongAnswer);
  checkShownStable(cluster, records);
  stats.operations = records.operations;
  stats.confirmed = cluster.servers.reduce((total, server) => total + server.confirmed.length, 0);
  stats.answers = records.answers.length;
  stats.finalAnswers = records.answers.filter((a) => !a.answer.tentative).length;
  stats.stableMessages = reference.length;
  stats.storedMessages = Object.values(cluster.servers[0].app!.shown().groups).reduce((total, group) => total + group.stored, 0);
}

/** Every message a client was shown as stable is at the place it was shown at, in the final history. */
function checkShownStable(cluster: SimCluster, records: ClientRecords): void {
  const app = cluster.servers[0].app!;
  const groups = app.shown().groups;
  for (const [key, { id }] of records.shownStable) {
    const [group, n] = key.split('#');
    const [placed] = messageRange(groups[group], Number(n) - 1, Number(n), app.store);
    const finalId = placed && `${placed.message.ts}.${placed.message.sender}`;
    if (finalId !== id) throw cluster.failure(`message ${id} was shown as stable at place ${n} of ${group}, but the final history has ${finalId ?? 'nothing'} there`);
  }
}

/** A state that never compacts reads nothing from a store. */
const inMemory: StoredHistory = { read: () => [], find: () => undefined };

/** Where two JSON texts part, with a little of each: enough to see which message or like differs. */
function firstDifferenceOf(shown: string, expected: string): string {
  let i = 0;
  while (i < shown.length && shown[i] === expected[i]) i++;
  const around = (text: string) => text.slice(Math.max(0, i - 80), i + 80);
  return `shown ...${around(shown)}... expected ...${around(expected)}...`;
}
