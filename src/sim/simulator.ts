/**
 * The deterministic simulator: one seed, one whole run. The daemon's own
 * node core, chat application and log-file code on a simulated network,
 * disk and clock, under a random schedule of loss, duplication, reordering,
 * symmetric and one-way partitions, crashes (losing unsynced writes, tearing
 * the journal, undoing names not yet durable) and restarts, while simulated
 * clients issue every kind of chat operation through the chat port of
 * different servers.
 *
 * Safety is checked during the run (SimCluster: stable prefixes agree; no
 * seq or timestamp reused, across restarts). Then everything heals and the
 * run must converge: same messages, same order, same chat state everywhere,
 * every confirmed operation present exactly once, stores collected to empty.
 */
import type { Message } from '../broadcast/types.js';
import type { ChatOp } from '../chat/operations.js';
import { likeRefusal, noStoredTargets } from '../chat/likes.js';
import { canonicalJson, emptyChatState } from '../chat/model.js';
import { applyBatch } from '../chat/reducer.js';
import type { StoredHistory } from '../server/historyStore.js';
import { lastMessages, plainChatState } from '../server/groupQueries.js';
import { SimCluster, SimulationFailure, type SimBroken } from './cluster.js';
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
}

export interface SimulationResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly failure?: string;
  readonly stats: SimulationStats;
}

interface SimUser {
  readonly name: string;
  session?: { id: string; server: number };
  group?: string;
}

const groups = ['lobby', 'dev', 'ops'];
/** After the final heal, the cluster must converge within this much simulated time. */
const convergeLimitMs = 60_000;

/** tools/sim without --servers: seeds 1, 2, ... run 3, 4, ..., 9, 3, ... servers, so any seven seeds in a row cover every size. */
export function serversForSeed(seed: number): number {
  return 3 + ((((seed - 1) % 7) + 7) % 7);
}

export function runSimulation(options: SimulationOptions): SimulationResult {
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
  const stats: SimulationStats = { faults: 0, crashes: 0, restarts: 0, snapshots: 0, operations: 0, confirmed: 0, stableMessages: 0, storedMessages: 0, simulatedMs: 0, convergeMs: 0 };
  try {
    faultPhase(cluster, options, stats);
    const healedAt = cluster.now;
    healAll(cluster, stats);
    cluster.runUntilTrue(() => cluster.quiescent(), convergeLimitMs, 'convergence after the final heal');
    stats.convergeMs = cluster.now - healedAt;
    checkConverged(cluster, stats);
    stats.simulatedMs = cluster.now;
    return { seed: options.seed, ok: true, stats };
  } catch (err) {
    stats.simulatedMs = cluster.now;
    const message = err instanceof SimulationFailure ? err.message : `${(err as Error).message}\nlast events:\n${cluster.trace.slice(-40).join('\n')}`;
    return { seed: options.seed, ok: false, failure: message, stats };
  }
}

function faultPhase(cluster: SimCluster, options: SimulationOptions, stats: SimulationStats): void {
  const random = cluster.random;
  const n = cluster.config.serverCount;
  const users: SimUser[] = Array.from({ length: 6 }, (_, i) => ({ name: `u${i + 1}` }));
  const end = options.faultPhaseMs ?? 3000;
  const gap = options.eventGapMs ?? 4;
  let sessionCounter = 0;
  while (cluster.now < end) {
    cluster.runUntil(cluster.now + random.next() * 2 * gap);
    const roll = random.next();
    if (roll < 0.75) {
      clientOperation(cluster, users, stats, () => `s${++sessionCounter}`);
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

/** One operation by a random user, checked against the server's shown state by the chat's rules, as ChatService does. */
function clientOperation(cluster: SimCluster, users: SimUser[], stats: SimulationStats, newSession: () => string): void {
  const random = cluster.random;
  const user = random.pick(users);
  if (user.session && !cluster.server(user.session.server).up) {
    user.session = undefined; // The client saw its connection drop.
    user.group = undefined;
  }
  const submit = (server: number, op: ChatOp) => {
    stats.operations++;
    if (!cluster.submit(server, op, () => stats.confirmed++)) return;
    cluster.log(`client ${user.name} at ${server}: ${op.op}${'group' in op ? ` ${op.group}` : ''}`);
  };
  // Sometimes the client also sends the request again, same request id, through another server (as after losing the answer): applied once.
  const submitWithRetry = (server: number, op: ChatOp & { rid: string }) => {
    submit(server, op);
    const others = cluster.servers.filter((x) => x.up && x.id !== server).map((x) => x.id);
    if (others.length === 0 || !random.chance(0.1)) return;
    const retryAt = random.pick(others);
    submit(retryAt, op);
    cluster.log(`client ${user.name} retried ${op.rid} at ${retryAt}`);
  };
  if (!user.session) {
    const up = cluster.servers.filter((x) => x.up).map((x) => x.id);
    if (up.length === 0) return;
    user.session = { id: newSession(), server: random.pick(up) };
    user.group = random.pick(groups);
    submit(user.session.server, { op: 'join', session: user.session.id, user: user.name, group: user.group });
    return;
  }
  const { id: session, server } = user.session;
  const roll = random.next();
  if (roll < 0.5 && user.group) {
    submitWithRetry(server, { op: 'append', session, user: user.name, group: user.group, text: `t${stats.operations}`, rid: `r${stats.operations}` });
  } else if (roll < 0.8 && user.group) {
    const port = cluster.server(server).port!;
    // A message the user may like, or may unlike: never their own. Read from the store as much as from the tail.
    const candidates = lastMessages(port.shown().groups[user.group], 20, port.history).filter(
      ({ message, likes }) => likeRefusal({ user: message.user, likes }, user.name, !likes.includes(user.name)) === undefined,
    );
    if (candidates.length === 0) return;
    const { message: target, likes } = random.pick(candidates);
    const like = !likes.includes(user.name);
    submitWithRetry(server, { op: like ? 'like' : 'unlike', user: user.name, group: user.group, message: { ts: target.ts, sender: target.sender }, rid: `r${stats.operations}` });
  } else if (roll < 0.9) {
    user.group = random.pick(groups);
    submit(server, { op: 'join', session, user: user.name, group: user.group });
  } else {
    submit(server, { op: 'leave', session });
    user.session = undefined; // Disconnected.
    user.group = undefined;
  }
}

function healAll(cluster: SimCluster, stats: SimulationStats): void {
  cluster.network.heal();
  cluster.network.faults = { loss: 0, duplicate: 0, minDelayMs: 0.05, jitterMs: 0.5 };
  for (const server of cluster.servers) {
    server.crashWhileWriting = false;
    if (!server.up) {
      cluster.restart(server.id);
      stats.restarts++;
    }
  }
  cluster.log('final heal: all servers up, no faults');
}

function checkConverged(cluster: SimCluster, stats: SimulationStats): void {
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
  const expected = canonicalJson(plainChatState(applyBatch(emptyChatState, reference, noStoredTargets).state, inMemory));
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
  stats.stableMessages = reference.length;
  stats.storedMessages = Object.values(cluster.servers[0].app!.shown().groups).reduce((total, group) => total + group.stored, 0);
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
