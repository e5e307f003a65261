#!/usr/bin/env node
/**
 * tools/chaos: a random (seeded) schedule of partitions, loss, kills and
 * relaunches against the running local cluster, while scripted clients on
 * every server append, like and unlike and record what was confirmed.
 * Then it heals, waits for convergence, checks the invariants through the
 * daemons' status and their log files, prints a report, and exits non-zero
 * on any violation.
 */
import { configDefaultText, configOfDataRoot, dataRootDefaultText, defaultDataRoot, exitCode, exitWith, usageFailure } from '../commandLine.js';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { openWebSocketChannel } from '../client/connection.js';
import { ClientSession, SessionError } from '../client/session.js';
import { loadClusterConfig } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { recentMessages, type Confirmation } from '../rpc/protocol.js';
import { Random } from '../sim/random.js';
import { LocalCluster, type ClusterServerStatus } from './localCluster.js';
import { historyViolations, type AckedAppend, type ClientRecord, type LikeOp } from './chaosChecks.js';
import { inspect } from './inspection.js';
import { serverDir } from './clusterProcesses.js';

interface Tally {
  attempted: number;
  confirmed: number;
  refused: number;
  inDoubt: number;
  /** In-doubt appends, likes and unlikes sent again, with their request id, to the next server, and acknowledged there. */
  resent: number;
  reconnects: number;
}

/** One scripted user, on one server at a time; moves to another when its server dies. */
class ChaosClient implements ClientRecord {
  private readonly session: ClientSession;
  private counter = 0;
  readonly appends: AckedAppend[] = [];
  readonly likes: LikeOp[] = [];
  /** (user, target) pairs with a like or unlike whose outcome is unknown (the connection died mid-call). */
  readonly doubtful = new Set<string>();
  /** Texts of appends resent and acknowledged: each must be in the history exactly once, whichever copy took effect. */
  readonly resent: string[] = [];
  /** Likes sent, by request id: what a resend of one was. */
  private readonly likesSent = new Map<string, Omit<LikeOp, 'id'>>();

  constructor(
    readonly user: string,
    private readonly group: string,
    private readonly cluster: LocalCluster,
    private readonly random: Random,
    private readonly tally: Tally,
    private home: number,
  ) {
    // The session joins the group as this user on every server it connects to.
    const identity = { user, group };
    this.session = new ClientSession((address, handlers) => openWebSocketChannel(address, handlers, 1000), {
      resent: (mutation, answer) => {
        this.tally.resent++;
        if (mutation.method === 'append') this.resent.push(mutation.params.text);
        else this.likes.push({ ...this.likesSent.get(mutation.params.requestId!)!, id: answer.id, resent: true });
      },
      // A like or unlike the rules refuse where it is resent (its target not there yet, say): in doubt.
      resendRefused: (mutation) => {
        if (mutation.method !== 'append') this.doubt(this.likesSent.get(mutation.params.requestId!)!);
      },
    }, identity);
  }

  async run(until: () => boolean, pauseMs: number): Promise<void> {
    while (!until()) {
      try {
        if (!this.session.connected) await this.connect();
        else if (this.session.waiting.length > 0) await this.session.resendUnanswered();
        else await this.operate();
      } catch (err) {
        if (!(err instanceof SessionError)) throw err;
      }
      await sleep(pauseMs);
    }
    this.session.close();
    // Never answered: whether a lost server took them is unknown.
    for (const like of this.session.waiting) if (like.method !== 'append') this.doubt(this.likesSent.get(like.params.requestId!)!);
  }

  private doubt(like: Omit<LikeOp, 'id'>): void {
    this.doubtful.add(`${like.user} ${like.target}`);
  }

  /** Home first, then random servers, until one takes the session over. */
  private async connect(): Promise<void> {
    const ids = this.cluster.ids;
    const candidates = [this.home, ...Array.from({ length: ids.length - 1 }, () => this.random.pick(ids))];
    const address = (id: number) => `${this.cluster.config.servers[id - 1].host}:${this.cluster.config.servers[id - 1].clientPort}`;
    const connected = await this.session.connectToFirst(candidates.map(address));
    if (connected === undefined) return;
    this.home = candidates[candidates.map(address).indexOf(connected)];
    this.tally.reconnects++;
  }

  private async operate(): Promise<void> {
    const others = this.session.mirror.last(recentMessages).filter((m) => m.user !== this.user);
    this.tally.attempted++;
    if (others.length === 0 || this.random.chance(0.6)) {
      const text = `${this.user}-${++this.counter}`;
      const result = await this.call(() => this.session.append(text));
      if (result) this.appends.push({ id: result.id, text });
      return;
    }
    const target = this.random.pick(others);
    const like: Omit<LikeOp, 'id'> = { user: this.user, target: target.id, targetText: target.text, like: !target.likedBy.includes(this.user), rid: this.session.nextRequestId() };
    this.likesSent.set(like.rid, like);
    const result = await this.call(() => this.session.like(target.id, like.like, { requestId: like.rid }));
    if (result) this.likes.push({ ...like, id: result.id });
  }

  /** Call; undefined when refused (counted) or lost with the connection (in doubt, kept by the session for the next server). */
  private async call(send: () => Promise<Confirmation>): Promise<Confirmation | undefined> {
    try {
      const result = await send();
      this.tally.confirmed++;
      return result;
    } catch (err) {
      if (!(err instanceof SessionError)) throw err;
      if (this.session.connected) this.tally.refused++;
      else this.tally.inDoubt++;
      return undefined;
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Report {
  seed: number;
  durationS: number;
  faults: Record<string, number>;
  operations: Tally;
  appendsConfirmed: number;
  likesConfirmed: number;
  convergeMs: number;
  digest: string;
  violations: string[];
}

async function injectFaults(cluster: LocalCluster, random: Random, until: () => boolean, intervalMs: number, faults: Record<string, number>, say: (line: string) => void): Promise<void> {
  const n = cluster.ids.length;
  while (!until()) {
    await sleep(intervalMs * (0.5 + random.next()));
    if (until()) break;
    const down = cluster.ids.filter((id) => cluster.pid(id) === undefined);
    const up = cluster.ids.filter((id) => cluster.pid(id) !== undefined);
    const roll = random.next();
    let what: string;
    if (roll < 0.25) {
      const groups: number[][] = [[], []];
      for (const id of cluster.ids) groups[random.int(0, 1)].push(id);
      const nonEmpty = groups.filter((g) => g.length > 0);
      await cluster.partition(nonEmpty);
      what = `partition ${nonEmpty.map((g) => g.join(',')).join(' ')}`;
    } else if (roll < 0.45) {
      const i = random.int(1, n);
      const j = (i % n) + 1;
      const p = random.int(10, 40);
      await cluster.loss(i, j, p / 100, random.chance(0.3));
      what = `loss ${i} ${j} ${p}%`;
    } else if (roll < 0.65 && down.length < 2 && up.length > 3) {
      const id = random.pick(up);
      await cluster.kill(id);
      what = `kill ${id}`;
    } else if (roll < 0.85 && down.length > 0) {
      const id = random.pick(down);
      await cluster.relaunch(id);
      what = `relaunch ${id}`;
    } else {
      await cluster.heal();
      what = 'heal';
    }
    const kind = what.split(' ')[0];
    faults[kind] = (faults[kind] ?? 0) + 1;
    say(what);
  }
}

/** Converged: all up, same seq vector and digest everywhere, nothing tentative or retained. */
function converged(statuses: (ClusterServerStatus | undefined)[]): boolean {
  const first = statuses[0];
  if (!first) return false;
  return statuses.every(
    (s) =>
      s !== undefined &&
      s.digest === first.digest &&
      s.unstable === 0 &&
      s.retained === 0 &&
      s.view.length === statuses.length &&
      s.seqVector.every((seq, i) => seq === first.seqVector[i]),
  );
}

function checkInvariants(cluster: LocalCluster, statuses: ClusterServerStatus[], clients: ChaosClient[], group: string): string[] {
  const violations: string[] = [];
  const n = cluster.ids.length;
  for (const status of statuses) {
    const files = inspect(serverDir(cluster.paths, status.id), status.id, n);
    if (files.digest !== status.digest) violations.push(`server ${status.id}: log files hold state ${files.digest}, the daemon shows ${status.digest}`);
    if (files.messages.length > 0) violations.push(`server ${status.id}: log files still hold ${files.messages.length} messages after garbage collection`);
    const history = files.chat.groups[group]?.messages ?? [];
    const requests = files.chat.requests;
    const firstCarrier = (user: string, rid: string) => requests[user]?.[rid]?.id;
    violations.push(...historyViolations(history, clients, firstCarrier).map((v) => `server ${status.id}: ${v}`));
  }
  return violations;
}

export async function runChaos(cluster: LocalCluster, options: { seed: number; durationS: number; faultIntervalMs: number; convergeTimeoutS: number; say: (line: string) => void }): Promise<Report> {
  const { seed, say } = options;
  const before = await cluster.statuses();
  const missing = cluster.ids.filter((_, i) => !before[i]);
  if (missing.length > 0) throw new ChorusError('INVALID_ARGUMENT', `servers ${missing.join(',')} are not running: start the cluster first (make run)`);
  const random = new Random(seed);
  const group = `chaos-${seed}`;
  const tally: Tally = { attempted: 0, confirmed: 0, refused: 0, inDoubt: 0, resent: 0, reconnects: 0 };
  const clients = cluster.ids.map((id) => new ChaosClient(`chaos${seed}u${id}`, group, cluster, new Random(seed * 31 + id), tally, id));
  const faults: Record<string, number> = {};
  const endAt = Date.now() + options.durationS * 1000;
  const over = () => Date.now() >= endAt;
  say(`chaos seed ${seed} for ${options.durationS} s against ${cluster.ids.length} servers; ${clients.length} clients in group ${group}`);
  const startedAt = Date.now();
  const ticker = setInterval(() => {
    const elapsedS = Math.round((Date.now() - startedAt) / 1000);
    say(`  ${elapsedS} of ${options.durationS} s: ${tally.confirmed} operations confirmed, ${tally.refused} refused, ${tally.inDoubt} in doubt so far`);
  }, 10_000);
  try {
    await Promise.all([...clients.map((c) => c.run(over, 15)), injectFaults(cluster, random, over, options.faultIntervalMs, faults, (line) => say(`  fault: ${line}`))]);
  } finally {
    clearInterval(ticker);
  }

  say('healing, relaunching every server, waiting for convergence');
  await cluster.heal();
  for (const id of cluster.ids) await cluster.relaunch(id);
  const healedAt = Date.now();
  let statuses = await cluster.statuses();
  while (!converged(statuses)) {
    if (Date.now() - healedAt > options.convergeTimeoutS * 1000) break;
    await sleep(50);
    statuses = await cluster.statuses();
  }
  const convergeMs = Date.now() - healedAt;
  const violations: string[] = [];
  if (!converged(statuses)) {
    violations.push(`no convergence within ${options.convergeTimeoutS} s: ${statuses.map((s, i) => (s ? `server ${s.id} digest ${s.digest} seq [${s.seqVector}] tentative ${s.unstable} retained ${s.retained}` : `server ${i + 1} down`)).join('; ')}`);
  } else {
    // The daemons record their ack matrices lazily (at most once per status interval), so the files may trail what they show by a moment.
    const deadline = Date.now() + 5000;
    let found = checkInvariants(cluster, statuses as ClusterServerStatus[], clients, group);
    while (found.length > 0 && Date.now() < deadline) {
      await sleep(200);
      found = checkInvariants(cluster, statuses as ClusterServerStatus[], clients, group);
    }
    violations.push(...found);
  }
  return {
    seed,
    durationS: options.durationS,
    faults,
    operations: tally,
    appendsConfirmed: clients.reduce((sum, c) => sum + c.appends.length, 0),
    likesConfirmed: clients.reduce((sum, c) => sum + c.likes.length, 0),
    convergeMs,
    digest: statuses[0]?.digest ?? '',
    violations,
  };
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('tools/chaos')
    .usage('$0 --duration <s> --seed <n>\n\nBreak the running cluster at random (seeded) while clients chat, then check that nothing confirmed was lost or duplicated and that every server agrees.')
    .option('duration', { type: 'number', default: 30, describe: 'seconds of faults and traffic' })
    .option('seed', { type: 'number', default: 1, describe: 'seed of the fault schedule and the clients\' choices' })
    .option('fault-interval-ms', { type: 'number', default: 1500, describe: 'mean time between faults' })
    .option('converge-timeout', { type: 'number', default: 30, describe: 'seconds allowed to converge after the final heal' })
    .option('config', { type: 'string', defaultDescription: configDefaultText, describe: 'cluster configuration file' })
    .option('data-root', { type: 'string', default: defaultDataRoot, defaultDescription: dataRootDefaultText, describe: 'where the daemons keep their files' })
    .middleware(configOfDataRoot)
    .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' })
    .check((a) => {
      if (!(a.duration > 0)) throw new Error('--duration must be a positive number of seconds');
      if (!Number.isSafeInteger(a.seed)) throw new Error('--seed must be an integer');
      return true;
    })
    .strict()
    .help()
    .alias('help', 'h')
    .fail(usageFailure('tools/chaos'))
    .parseAsync();
  const cluster = new LocalCluster(loadClusterConfig(argv.config as string), { dataRoot: argv['data-root'], configFile: argv.config as string });
  const report = await runChaos(cluster, {
    seed: argv.seed,
    durationS: argv.duration,
    faultIntervalMs: argv['fault-interval-ms'],
    convergeTimeoutS: argv['converge-timeout'],
    say: (line) => {
      if (!argv.json) console.log(line);
    },
  });
  if (argv.json) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    const f = Object.entries(report.faults).map(([k, v]) => `${v} ${k}`).join(', ') || 'none';
    const o = report.operations;
    console.log(`faults injected: ${f}`);
    console.log(`operations: ${o.attempted} attempted, ${o.confirmed} confirmed (${report.appendsConfirmed} appends, ${report.likesConfirmed} likes/unlikes), ${o.refused} refused, ${o.inDoubt} in doubt (connection lost), ${o.resent} of them resent with their request id, ${o.reconnects} connections`);
    console.log(`converged ${report.convergeMs} ms after the heal; state digest ${report.digest}`);
    console.log(report.violations.length === 0 ? 'no violations' : `VIOLATIONS:\n${report.violations.map((v) => `  ${v}`).join('\n')}`);
  }
  process.exit(report.violations.length === 0 ? exitCode.ok : exitCode.checkFailed);
}

main().catch((err: Error) => exitWith('tools/chaos', err instanceof ChorusError ? err.message : (err.stack ?? err.message), exitCode.usage));
