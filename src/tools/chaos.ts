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
import { ChorusConnection, RpcCallError } from '../client/connection.js';
import { loadClusterConfig } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { RpcErrors, type GroupView } from '../rpc/protocol.js';
import { Random } from '../sim/random.js';
import { LocalCluster, type ServerStatus } from './clusterOps.js';
import { historyViolations, type AckedAppend, type ClientRecord, type LikeOp } from './chaosChecks.js';
import { inspect } from './inspection.js';
import { serverDir } from './localCluster.js';

interface Tally {
  attempted: number;
  confirmed: number;
  refused: number;
  inDoubt: number;
  /** In-doubt appends, likes and unlikes sent again, with their request id, to the next server, and acknowledged there. */
  resent: number;
  reconnects: number;
}

/** The errors of the like rules (rules.ts) and of a target this server does not know. */
const likeRuleErrors: number[] = [RpcErrors.unknownMessage, RpcErrors.ownMessage, RpcErrors.alreadyLiked, RpcErrors.notLiked];

type Unanswered = { kind: 'append'; text: string } | { kind: 'like'; like: Omit<LikeOp, 'id'> };

/** One scripted user, on one server at a time; moves to another when its server dies. */
class ChaosClient implements ClientRecord {
  connection: ChorusConnection | undefined;
  private screen: GroupView | undefined;
  private counter = 0;
  readonly appends: AckedAppend[] = [];
  readonly likes: LikeOp[] = [];
  /** (user, target) pairs with a like or unlike whose outcome is unknown (the connection died mid-call). */
  readonly doubtful = new Set<string>();
  /** Requests whose connection died before the answer: sent again, same request id, after the next connect. */
  private unanswered: Unanswered[] = [];
  /** Texts of appends resent and acknowledged: each must be in the history exactly once, whichever copy took effect. */
  readonly resent: string[] = [];

  constructor(
    readonly user: string,
    private readonly group: string,
    private readonly cluster: LocalCluster,
    private readonly random: Random,
    private readonly tally: Tally,
    private home: number,
  ) {}

  async run(until: () => boolean, pauseMs: number): Promise<void> {
    while (!until()) {
      try {
        if (!this.connection?.connected) await this.connect();
        else if (this.unanswered.length > 0) await this.resend();
        else await this.operate();
      } catch (err) {
        if (!(err instanceof RpcCallError)) throw err;
      }
      await sleep(pauseMs);
    }
    this.connection?.close();
    // Never answered: whether a lost server took them is unknown.
    for (const request of this.unanswered) if (request.kind === 'like') this.doubtful.add(`${request.like.user} ${request.like.target}`);
  }

  private async connect(): Promise<void> {
    const ids = this.cluster.ids;
    for (let attempt = 0; attempt < ids.length; attempt++) {
      const id = attempt === 0 ? this.home : this.random.pick(ids);
      const server = this.cluster.config.servers[id - 1];
      try {
        const connection = await ChorusConnection.connect(`${server.host}:${server.clientPort}`, 1000);
        connection.on('group', (view) => (this.screen = view));
        await connection.call('user', { name: this.user });
        this.screen = await connection.call('join', { group: this.group });
        this.connection = connection;
        this.home = id;
        this.tally.reconnects++;
        return;
      } catch {
        // That server is down or cut off; try another.
      }
    }
  }

  private async operate(): Promise<void> {
    const connection = this.connection!;
    const others = (this.screen?.messages ?? []).filter((m) => m.user !== this.user);
    this.tally.attempted++;
    if (others.length === 0 || this.random.chance(0.6)) {
      const text = `${this.user}-${++this.counter}`;
      // The text doubles as the request id: unique per user.
      const result = await this.call(connection, 'append', { text, requestId: text });
      if (result) this.appends.push({ id: result.id, text });
      else if (!connection.connected) this.unanswered.push({ kind: 'append', text });
      return;
    }
    const target = this.random.pick(others);
    const like: Omit<LikeOp, 'id'> = { user: this.user, target: target.id, targetText: target.text, like: !target.likedBy.includes(this.user), rid: `${this.user}-L${++this.counter}` };
    const result = await this.call(connection, like.like ? 'like' : 'unlike', { id: target.id, requestId: like.rid });
    if (result) this.likes.push({ ...like, id: result.id });
    else if (!connection.connected) this.unanswered.push({ kind: 'like', like });
  }

  /**
   * Send the oldest unanswered request again, with the same request id:
   * applied once whether or not the lost server took it. A like or unlike
   * the rules refuse here (its target not here yet, say) stays in doubt.
   */
  private async resend(): Promise<void> {
    const connection = this.connection!;
    const request = this.unanswered[0];
    try {
      if (request.kind === 'append') {
        await connection.call('append', { text: request.text, requestId: request.text });
        this.resent.push(request.text);
      } else {
        const { like } = request;
        const result = await connection.call(like.like ? 'like' : 'unlike', { id: like.target, requestId: like.rid });
        this.likes.push({ ...like, id: result.id, resent: true });
      }
      this.unanswered.shift();
      this.tally.resent++;
    } catch (err) {
      if (!(err instanceof RpcCallError)) throw err;
      // Lost again: tried after the next connect; refused for now (busy, a limit): tried again later; a like the rules refuse here: in doubt.
      if (request.kind === 'like' && connection.connected && likeRuleErrors.includes(err.code)) {
        this.unanswered.shift();
        this.doubtful.add(`${request.like.user} ${request.like.target}`);
      }
    }
  }

  /** Call; undefined when refused (counted) or lost with the connection (in doubt). */
  private async call(connection: ChorusConnection, ...[method, params]: ['append', { text: string; requestId: string }] | ['like' | 'unlike', { id: string; requestId: string }]): Promise<{ id: string } | undefined> {
    try {
      const result = await connection.call(method, params);
      this.tally.confirmed++;
      return result;
    } catch (err) {
      if (!(err instanceof RpcCallError)) throw err;
      if (connection.connected) this.tally.refused++;
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
function converged(statuses: (ServerStatus | undefined)[]): boolean {
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

function checkInvariants(cluster: LocalCluster, statuses: ServerStatus[], clients: ChaosClient[], group: string): string[] {
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
    let found = checkInvariants(cluster, statuses as ServerStatus[], clients, group);
    while (found.length > 0 && Date.now() < deadline) {
      await sleep(200);
      found = checkInvariants(cluster, statuses as ServerStatus[], clients, group);
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
