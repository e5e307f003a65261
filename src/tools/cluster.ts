#!/usr/bin/env node
/**
 * tools/cluster: run, stop and break the local cluster of clusterconfig.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { configDefaultText, configFileFor, configOfDataRoot, generatedConfigFile, dataRootDefaultText, defaultDataRoot, exitCode, exitWith, usageFailure } from '../commandLine.js';
import { formatClusterConfig, loadClusterConfig, loopbackServers, maxServers, minServers, serverById, type ClusterConfig, type ServerAddress } from '../config/clusterConfig.js';
import { createNamespaces, forgetNetnsPlan, kernelRules, loadNetnsPlan, netnsPlan, netnsUnavailable, removeNamespaces, saveNetnsPlan, type NetnsPlan } from './netns.js';
import { ChorusError } from '../errors.js';
import { ensureClusterKey } from '../config/clusterKey.js';
import { badDatagramCount, dropReasons, expectedDropReasons } from '../transport/udpTransport.js';
import { describeFaults, noFaultSettings } from '../transport/faults.js';
import { LocalCluster, type ClusterServerStatus } from './localCluster.js';
import { clusterKeyFile, consoleLogFile, consolePid, daemonLogFile, defaultConsolePort, diskBytes, launchConsole, serverDir, stopConsole } from './clusterProcesses.js';

interface Common {
  config: string;
  'data-root': string;
}

function open(args: Common): LocalCluster {
  return new LocalCluster(loadClusterConfig(args.config), { dataRoot: args['data-root'], configFile: args.config });
}

interface StartArgs extends Common {
  console: boolean;
  'console-port': number;
  servers?: number;
  netns: boolean;
}

/**
 * A cluster unlike the repository's clusterconfig (another size, or in
 * namespaces) gets a configuration generated into the data root, which
 * every tool then reads. Log files of a cluster of another shape are never
 * reused: that needs an empty data root.
 */
function prepare(args: StartArgs): string {
  const root = args['data-root'];
  const existing = loadNetnsPlan(root);
  const netns = args.netns || existing !== undefined;
  if (args.servers === undefined && !netns) return args.config;
  if (process.env.CHORUS_CONFIG || args.config !== configFileFor(root)) {
    throw new ChorusError('INVALID_ARGUMENT', '--servers and --netns write their own configuration into the data root; leave out --config and CHORUS_CONFIG');
  }
  if (netns) {
    const why = netnsUnavailable();
    if (why) throw new ChorusError('INVALID_ARGUMENT', `cannot run a namespaced cluster: ${why}`);
  }
  const current = loadClusterConfig(args.config);
  const count = args.servers ?? current.servers.length;
  const sameShape = count === current.servers.length && netns === (existing !== undefined);
  if (sameShape) {
    if (existing) createNamespaces(existing);
    return args.config;
  }
  const used = current.servers.filter((s) => existsSync(serverDir({ dataRoot: root, configFile: args.config }, s.id))).length;
  if (used > 0) {
    throw new ChorusError(
      'INVALID_ARGUMENT',
      `${root} holds the log files of a ${existing ? 'namespaced ' : ''}cluster of ${current.servers.length} servers; to start a ${netns ? 'namespaced ' : ''}cluster of ${count}, stop it (tools/cluster stop) and remove ${root} first`,
    );
  }
  mkdirSync(root, { recursive: true });
  const file = generatedConfigFile(root);
  if (!netns) {
    forgetNetnsPlan(root);
    writeFileSync(file, formatClusterConfig(loopbackServers(count), `written by tools/cluster start --servers ${count}`));
    return file;
  }
  const plan = netnsPlan(root, count);
  // Recorded before anything is created, so that stop can remove what a start that crashed halfway made.
  saveNetnsPlan(root, plan);
  writeFileSync(file, formatClusterConfig(plan.servers.map((s) => ({ host: s.address, udpPort: 7101, clientPort: 7201 })), `written by tools/cluster start --netns: server i runs in network namespace ${plan.prefix}-s<i>`));
  createNamespaces(plan);
  return file;
}

async function start(args: StartArgs): Promise<void> {
  const cluster = open({ ...args, config: prepare(args) });
  const { servers } = cluster.config;
  if (servers.every((s) => cluster.pid(s.id) !== undefined)) {
    console.log(`The cluster is already running (${servers.map((s) => `server ${s.id}: pid ${cluster.pid(s.id)}`).join(', ')}); nothing changed.`);
  } else {
    keygen(args);
    await cluster.start();
    for (const s of servers) {
      console.log(`server ${s.id}: pid ${cluster.pid(s.id)}, UDP ${s.host}:${s.udpPort}, clients ${s.host}:${s.clientPort}, log ${daemonLogFile(cluster.paths, s.id)}`);
    }
    console.log(`The cluster is up (${servers.length} servers).`);
    console.log(`Chat: make client SERVER=1 (any of 1-${servers.length}). Break it: tools/cluster --help. Stop it: make stop`);
  }
  if (args.console) await startConsole(cluster, args['console-port']);
}

/** The web console in the background, unless it runs; a console that cannot start is reported, the cluster stays up. */
async function startConsole(cluster: LocalCluster, port: number): Promise<void> {
  const url = `http://127.0.0.1:${port}/`;
  const running = consolePid(cluster.paths);
  if (running !== undefined) return console.log(`Console: ${url} (already running, pid ${running})`);
  const file = consoleLogFile(cluster.paths);
  const offset = existsSync(file) ? statSync(file).size : 0;
  const pid = launchConsole(cluster.paths, port);
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
    if (await serves(url)) return console.log(`Console: ${url} (open it in a browser on this machine; pid ${pid})`);
    if (consolePid(cluster.paths) === undefined) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const said = existsSync(file) ? readFileSync(file, 'utf8').slice(offset).trim() : '';
  console.log(`The console did not start (${said || `see ${file}`}); run it by hand with tools/console --port <port>.`);
}

async function serves(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).ok;
  } catch {
    return false;
  }
}

function keygen(args: Common): void {
  const file = clusterKeyFile({ dataRoot: args['data-root'], configFile: args.config });
  if (ensureClusterKey(file)) console.log(`Created the cluster key ${file} (mode 0600): every daemon signs its datagrams with it.`);
}

async function stop(args: Common & { id?: string }): Promise<void> {
  const cluster = open(args);
  if (args.id !== undefined) {
    const id = serverArg(args.id, cluster.config);
    console.log((await cluster.stopOne(id)) ? `Stopped server ${id} cleanly (its log files are complete; relaunch it with tools/cluster relaunch ${id}).` : `Server ${id} was not running.`);
    return;
  }
  const stopped = await cluster.stop();
  const consoleStopped = await stopConsole(cluster.paths);
  console.log(stopped === 0 ? 'No daemon was running.' : `Stopped ${stopped} daemon${stopped === 1 ? '' : 's'}.`);
  if (consoleStopped) console.log('Stopped the console.');
  removeNetns(args['data-root']);
}

/** A namespaced cluster's namespaces, links and rules go when it stops (its faults with them); also what a crashed start left. */
function removeNetns(root: string): void {
  if (netnsUnavailable() !== undefined) return;
  const plan = loadNetnsPlan(root);
  if (removeNamespaces(netnsPlan(root, 0).prefix)) console.log(`Removed the network namespaces, links and nftables rules of the namespaced cluster (${netnsPlan(root, 0).prefix}*).`);
  if (plan && Object.keys(plan.faults).length > 0) saveNetnsPlan(root, { ...plan, faults: {} });
}

async function kill(args: Common & { id: string }): Promise<void> {
  const cluster = open(args);
  const id = serverArg(args.id, cluster.config);
  const killed = await cluster.kill(id);
  console.log(killed ? `Killed server ${id} (SIGKILL: no clean shutdown).` : `Server ${id} was not running.`);
}

async function relaunch(args: Common & { id: string }): Promise<void> {
  const cluster = open(args);
  const id = serverArg(args.id, cluster.config);
  if (await cluster.relaunch(id)) console.log(`Relaunched server ${id} (pid ${cluster.pid(id)}) from its log files.`);
  else console.log(`Server ${id} is already running (pid ${cluster.pid(id)}).`);
}

interface StatusArgs extends Common {
  json: boolean;
  wide: boolean;
  watch?: number;
}

async function status(args: StatusArgs): Promise<void> {
  const cluster = open(args);
  if (args.watch === undefined) return console.log(await statusText(cluster, args));
  const everyMs = Math.max(0.2, args.watch) * 1000;
  for (;;) {
    const text = await statusText(cluster, args);
    // On a terminal the table is redrawn in place; into a file or pipe, one table after another.
    if (process.stdout.isTTY) process.stdout.write(`\x1b[H\x1b[2J${new Date().toLocaleTimeString()}  (every ${everyMs / 1000} s; Ctrl-C stops)\n${text}\n`);
    else console.log(`${new Date().toISOString()}\n${text}\n`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function statusText(cluster: LocalCluster, args: StatusArgs): Promise<string> {
  const statuses = await cluster.statuses();
  const servers = cluster.config.servers;
  const logBytes = servers.map((s) => diskBytes(serverDir(cluster.paths, s.id)));
  if (args.json) {
    const out = servers.map((s, i) => ({ id: s.id, up: statuses[i] !== undefined, pid: cluster.pid(s.id) ?? null, logBytes: logBytes[i], status: statuses[i] ?? null }));
    return JSON.stringify(out, null, 2);
  }
  const table = args.wide ? wideTable(servers, statuses, logBytes, cluster) : narrowTable(servers, statuses, logBytes, cluster);
  const plan = cluster.netns;
  const notes = statuses.flatMap((st) => (st ? serverNotes(st, !args.wide && !plan) : []));
  if (plan) notes.push(...kernelNotes(plan, statuses));
  return notes.length > 0 ? `${table}\n\n${notes.join('\n')}` : table;
}

type Row = (s: ServerAddress, st: ClusterServerStatus | undefined, logBytes: number, pid: number | undefined) => string[];

/** Fits 100 columns for a few hundred thousand messages: what changes under faults. Faults and dropped datagrams go below it. */
function narrowTable(servers: readonly ServerAddress[], statuses: readonly (ClusterServerStatus | undefined)[], logBytes: readonly number[], cluster: LocalCluster): string {
  const row: Row = (s, st, bytes, pid) => {
    if (!st) return [String(s.id), 'down', String(pid ?? '-'), '', '', '', '', formatBytes(bytes), ''];
    return [String(s.id), stateOf(st), String(st.pid), `{${st.view.join(',')}}`, `[${st.seqVector.join(',')}]`, String(st.stableTs), String(st.unstable), formatBytes(bytes), st.digest];
  };
  return table(['id', 'state', 'pid', 'view', 'seq vector', 'stable ts', 'tentative', 'log', 'digest'], servers, statuses, logBytes, cluster, row);
}

function wideTable(servers: readonly ServerAddress[], statuses: readonly (ClusterServerStatus | undefined)[], logBytes: readonly number[], cluster: LocalCluster): string {
  const row: Row = (s, st, bytes, pid) => {
    if (!st) return [String(s.id), 'down', String(pid ?? '-'), '', '', '', '', '', '', formatBytes(bytes), '', '', '', '', ''];
    return [
      String(s.id),
      stateOf(st),
      String(st.pid),
      `{${st.view.join(',')}}`,
      `[${st.seqVector.join(',')}]`,
      `[${st.tsVector.join(',')}]`,
      String(st.clock),
      `${st.stableTs}/${st.stableEverywhereTs}`,
      `${st.unstable}/${st.retained}`,
      formatBytes(bytes),
      st.digest,
      String(st.sessions),
      String(st.refusedRequests),
      String(badDatagramCount(st.transport.dropped)),
      describeFaults(st.faults) || '-',
    ];
  };
  const header = ['id', 'state', 'pid', 'view', 'seq vector', 'ts vector', 'clock', 'stable ts/everywhere', 'tentative/retained', 'log', 'digest', 'clients', 'refused requests', 'bad datagrams', 'injected faults'];
  return table(header, servers, statuses, logBytes, cluster, row);
}

function table(header: string[], servers: readonly ServerAddress[], statuses: readonly (ClusterServerStatus | undefined)[], logBytes: readonly number[], cluster: LocalCluster, row: Row): string {
  const rows = servers.map((s, i) => row(s, statuses[i], logBytes[i], cluster.pid(s.id)));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function stateOf(st: ClusterServerStatus): string {
  return st.storageError === undefined ? 'up' : 'FAILED';
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** What a person should know beyond the table: faults (narrow table), datagrams dropped as suspicious, a storage failure. */
function serverNotes(st: ClusterServerStatus, withFaults: boolean): string[] {
  const notes: string[] = [];
  if (withFaults && describeFaults(st.faults) !== '') notes.push(`server ${st.id} injected faults: ${describeFaults(st.faults)}`);
  const bad = dropReasons.filter((r) => !expectedDropReasons.includes(r) && st.transport.dropped[r] > 0).map((r) => `${r} ${st.transport.dropped[r]}`);
  if (bad.length > 0) notes.push(`server ${st.id} BAD DATAGRAMS dropped (a misconfigured or hostile sender): ${bad.join(', ')}`);
  if (st.storageError !== undefined) notes.push(`server ${st.id} STORAGE FAILED, accepting no operations until relaunched: ${st.storageError}`);
  return notes;
}

/** A namespaced cluster: each server's address and namespace, and the nftables rules in force in it. */
function kernelNotes(plan: NetnsPlan, statuses: readonly (ClusterServerStatus | undefined)[]): string[] {
  const notes = ['namespaced cluster: faults are nftables rules in each server\'s namespace (the daemons\' own fault filter is not used)'];
  for (const s of plan.servers) {
    // A running server's status carries its rules already; a server down still has its namespace and rules.
    const rules = statuses[s.id - 1]?.kernelRules ?? rulesIn(plan, s.id);
    if (rules === undefined) {
      notes.push(`server ${s.id}: its namespace ${s.namespace} does not exist (stopped: tools/cluster start creates it again)`);
      continue;
    }
    const faults = describeFaults(plan.faults[s.id] ?? noFaultSettings);
    notes.push(`server ${s.id} in namespace ${s.namespace} at ${s.address}: ${faults || 'no faults'}, ${rules.length} rule${rules.length === 1 ? '' : 's'}${rules.length > 0 ? ':' : ''}`);
    for (const rule of rules) notes.push(`    ${rule}`);
  }
  return notes;
}

function rulesIn(plan: NetnsPlan, id: number): readonly string[] | undefined {
  try {
    return kernelRules(plan, id);
  } catch {
    return undefined;
  }
}

/** A server number as typed on the command line, checked against the configuration. */
function serverArg(text: string, config: ClusterConfig): number {
  if (!/^\d+$/.test(text.trim())) throw new ChorusError('INVALID_ARGUMENT', `"${text}" is not a server number (servers 1-${config.servers.length})`);
  return serverById(config, Number(text)).id;
}

function parseGroup(text: string, config: ClusterConfig): number[] {
  if (!/^\d+(,\d+)*$/.test(text.trim())) throw new ChorusError('INVALID_ARGUMENT', `"${text}" is not a list of server numbers like 1,2`);
  return text.split(',').map((part) => serverArg(part, config));
}

async function partition(args: Common & { groups: string[] }): Promise<void> {
  const cluster = open(args);
  const result = await cluster.partition(args.groups.map((g) => parseGroup(g, cluster.config)));
  for (const r of result) console.log(`server ${r.id}: hears {${r.hears.join(',')}}${r.down ? ' (down: applies when relaunched)' : ''}`);
}

function parsePercent(text: string): number {
  const match = /^(\d+(?:\.\d+)?)%?$/.exec(text.trim());
  const value = match ? Number(match[1]) : NaN;
  if (!(value >= 0 && value <= 100)) throw new ChorusError('INVALID_ARGUMENT', `loss "${text}" is not a percentage from 0 to 100 (like 30 or 30%)`);
  return value / 100;
}

async function loss(args: Common & { i: string; j: string; percent: string; oneway: boolean }): Promise<void> {
  const p = parsePercent(String(args.percent));
  const cluster = open(args);
  const result = await cluster.loss(serverArg(args.i, cluster.config), serverArg(args.j, cluster.config), p, args.oneway);
  for (const r of result) {
    console.log(`server ${r.from} -> ${r.to}: dropping ${Math.round(p * 1000) / 10}% of datagrams${r.down ? ' (down: applies when relaunched)' : ''}`);
  }
}

interface FlapArgs extends Common {
  i: string;
  j: string;
  period: number;
  count?: number;
  oneway: boolean;
}

/** A link that goes down and up: cut (all datagrams dropped) for a period, whole for a period, until Ctrl-C or count changes; whole again at the end. */
async function flap(args: FlapArgs): Promise<void> {
  const cluster = open(args);
  const i = serverArg(args.i, cluster.config);
  const j = serverArg(args.j, cluster.config);
  const link = args.oneway ? `${i} -> ${j}` : `${i} <-> ${j}`;
  let stopping = false;
  const stop = () => (stopping = true);
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  console.log(`Flapping ${link} every ${args.period} s${args.count === undefined ? ' until Ctrl-C' : `, ${args.count} changes`}.`);
  for (let change = 0; !stopping && (args.count === undefined || change < args.count); change++) {
    const cut = change % 2 === 0;
    await cluster.loss(i, j, cut ? 1 : 0, args.oneway);
    console.log(`${new Date().toISOString()} ${link} ${cut ? 'cut' : 'whole'}`);
    await new Promise((r) => setTimeout(r, args.period * 1000));
  }
  await cluster.loss(i, j, 0, args.oneway);
  console.log(`${link} whole again.`);
}

async function heal(args: Common): Promise<void> {
  await open(args).heal();
  console.log('Healed: no partitions, no injected loss.');
}

const idArg = (y: ReturnType<typeof yargs>) =>
  y.positional('id', { type: 'string', demandOption: true, describe: 'server number (line in clusterconfig)' });

/** The two ends of a link, and whether only datagrams from i to j are meant (loss, flap). */
const linkArgs = (y: ReturnType<typeof yargs>) =>
  y
    .positional('i', { type: 'string', demandOption: true, describe: 'server' })
    .positional('j', { type: 'string', demandOption: true, describe: 'server' })
    .option('oneway', { type: 'boolean', default: false, describe: 'only datagrams from i to j' });

const fail = (err: Error): never => exitWith('tools/cluster', err instanceof ChorusError ? err.message : (err.stack ?? err.message), exitCode.usage);

yargs(hideBin(process.argv))
  .scriptName('tools/cluster')
  .usage('$0 <command> [options]\n\nRun, stop and break the local Chorus cluster described by clusterconfig.')
  .option('config', { type: 'string', defaultDescription: configDefaultText, describe: 'cluster configuration file' })
  .option('data-root', { type: 'string', default: defaultDataRoot, defaultDescription: dataRootDefaultText, describe: 'where daemons keep log files, pid files and daemon logs' })
  .middleware(configOfDataRoot)
  .command(
    'start',
    'start every daemon not running, in the background, and wait until all answer; then the web console',
    (y) =>
      y
        .option('servers', { type: 'number', describe: `a cluster of this many servers (${minServers}-${maxServers}) on loopback, its configuration written to <data-root>/clusterconfig` })
        .option('netns', { type: 'boolean', default: false, describe: 'each server in its own network namespace with its own address on a bridge; faults become nftables rules (root only)' })
        .check((a) => {
          if (a.servers !== undefined && !(Number.isInteger(a.servers) && a.servers >= minServers && a.servers <= maxServers)) throw new Error(`--servers takes a number from ${minServers} to ${maxServers}, got ${String(a.servers)}`);
          return true;
        })
        .option('console', { type: 'boolean', default: true, describe: 'also start the web console (--no-console: not)' })
        .option('console-port', { type: 'number', default: defaultConsolePort, describe: 'the web console\'s port on 127.0.0.1' }),
    (a) => start(a as unknown as StartArgs),
  )
  .command(
    'stop [id]',
    'stop every daemon and the console, or only server <id> (clean shutdown: a last snapshot, then exit)',
    (y) => y.positional('id', { type: 'string', describe: 'server number (line in clusterconfig); all if left out' }),
    (a) => stop(a as unknown as Common & { id?: string }),
  )
  .command('keygen', 'create the cluster key <data-root>/cluster.key (mode 0600) unless it exists; start does this too', {}, (a) => keygen(a as unknown as Common))
  .command(
    'status',
    'per server: up/down, pid, view, seq vector, stable point, tentative messages, log size, state digest; faults and bad datagrams below',
    (y) =>
      y
        .option('json', { type: 'boolean', default: false, describe: 'print JSON (everything each server reports)' })
        .option('wide', { type: 'boolean', default: false, describe: 'also ts vector, clock, stable-everywhere point, retained messages, bad datagrams, faults' })
        .option('watch', { type: 'number', describe: 'print it again every <seconds> (default 1) until Ctrl-C', coerce: (v: unknown) => (v === '' || v === true ? 1 : Number(v)) })
        .check((a) => {
          if (a.watch !== undefined && !(a.watch > 0)) throw new Error(`--watch takes a number of seconds, got ${String(a.watch)}`);
          return true;
        }),
    (a) => status(a as unknown as StatusArgs),
  )
  .command('kill <id>', 'crash a server (SIGKILL, no clean shutdown)', idArg, (a) => kill(a as unknown as Common & { id: string }))
  .command('relaunch <id>', 'start a killed server again from its log files', idArg, (a) => relaunch(a as unknown as Common & { id: string }))
  .command(
    'partition <groups..>',
    'only servers in the same group hear each other (e.g. partition 1,2 3,4,5); servers not named are isolated',
    (y) => y.positional('groups', { type: 'string', array: true, demandOption: true, describe: 'comma-separated server groups' }),
    (a) => partition(a as unknown as Common & { groups: string[] }),
  )
  .command(
    'loss <i> <j> <percent>',
    'drop that share of datagrams between servers i and j (both directions unless --oneway)',
    (y) =>
      linkArgs(y)
        .positional('percent', { type: 'string', demandOption: true, describe: 'like 30 or 30%' }),
    (a) => loss(a as unknown as Common & { i: string; j: string; percent: string; oneway: boolean }),
  )
  .command(
    'flap <i> <j>',
    'cut the link between i and j and restore it, again and again, every --period seconds (Ctrl-C or --count ends it, whole)',
    (y) =>
      linkArgs(y)
        .option('period', { type: 'number', default: 2, describe: 'seconds cut, then seconds whole' })
        .option('count', { type: 'number', describe: 'stop after this many changes (default: until Ctrl-C)' })
        .check((a) => {
          if (!(a.period > 0)) throw new Error(`--period takes a positive number of seconds, got ${String(a.period)}`);
          if (a.count !== undefined && !(Number.isInteger(a.count) && a.count >= 1)) throw new Error(`--count takes a positive whole number, got ${String(a.count)}`);
          return true;
        }),
    (a) => flap(a as unknown as FlapArgs),
  )
  .command('heal', 'remove every partition and injected loss', {}, (a) => heal(a as unknown as Common))
  .demandCommand(1, 'name a command: start, stop, keygen, status, kill, relaunch, partition, loss, flap, heal')
  .strict()
  .help()
  .alias('help', 'h')
  .fail(usageFailure('tools/cluster', fail))
  .parseAsync()
  .catch(fail);
