#!/usr/bin/env node
/**
 * tools/cluster: run, stop and break the local cluster of clusterconfig.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadClusterConfig, serverById, type ClusterConfig } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { ensureClusterKey } from '../config/clusterKey.js';
import { dropReasons } from '../transport/udpTransport.js';
import { describeFaults, LocalCluster, type ServerStatus } from './clusterOps.js';
import { clusterKeyFile, daemonLogFile } from './localCluster.js';

interface Common {
  config: string;
  'data-root': string;
}

function open(args: Common): LocalCluster {
  return new LocalCluster(loadClusterConfig(args.config), { dataRoot: args['data-root'], configFile: args.config });
}

async function start(args: Common): Promise<void> {
  const cluster = open(args);
  const { servers } = cluster.config;
  if (servers.every((s) => cluster.pid(s.id) !== undefined)) {
    console.log(`The cluster is already running (${servers.map((s) => `server ${s.id}: pid ${cluster.pid(s.id)}`).join(', ')}); nothing changed.`);
    return;
  }
  keygen(args);
  await cluster.start();
  for (const s of servers) {
    console.log(`server ${s.id}: pid ${cluster.pid(s.id)}, UDP ${s.host}:${s.udpPort}, clients ${s.host}:${s.clientPort}, log ${daemonLogFile(cluster.paths, s.id)}`);
  }
  console.log(`The cluster is up (${servers.length} servers).`);
  console.log(`Chat: make client SERVER=1 (any of 1-${servers.length}). Break it: tools/cluster --help. Stop it: make stop`);
}

function keygen(args: Common): void {
  const file = clusterKeyFile({ dataRoot: args['data-root'], configFile: args.config });
  if (ensureClusterKey(file)) console.log(`Created the cluster key ${file} (mode 0600): every daemon signs its datagrams with it.`);
}

async function stop(args: Common): Promise<void> {
  const stopped = await open(args).stop();
  console.log(stopped === 0 ? 'No daemon was running.' : `Stopped ${stopped} daemon${stopped === 1 ? '' : 's'}.`);
}

async function kill(args: Common & { id: number }): Promise<void> {
  const killed = await open(args).kill(args.id);
  console.log(killed ? `Killed server ${args.id} (SIGKILL: no clean shutdown).` : `Server ${args.id} was not running.`);
}

async function relaunch(args: Common & { id: number }): Promise<void> {
  const cluster = open(args);
  if (await cluster.relaunch(args.id)) console.log(`Relaunched server ${args.id} (pid ${cluster.pid(args.id)}) from its log files.`);
  else console.log(`Server ${args.id} is already running (pid ${cluster.pid(args.id)}).`);
}

async function status(args: Common & { json: boolean }): Promise<void> {
  const cluster = open(args);
  const statuses = await cluster.statuses();
  const servers = cluster.config.servers;
  if (args.json) {
    const out = servers.map((s, i) => ({ id: s.id, up: statuses[i] !== undefined, pid: cluster.pid(s.id) ?? null, status: statuses[i] ?? null }));
    console.log(JSON.stringify(out, null, 2));
    return;
  }
  const rows = servers.map((s, i) => {
    const st = statuses[i];
    if (!st) return [String(s.id), 'down', String(cluster.pid(s.id) ?? '-'), '', '', '', '', '', '', '', ''];
    const dropped = Object.values(st.transport.dropped).reduce((a, b) => a + b, 0);
    return [
      String(s.id),
      st.storageError === undefined ? 'up' : 'up, storage failed',
      String(st.pid),
      `{${st.view.join(',')}}`,
      `[${st.seqVector.join(',')}]`,
      String(st.clock),
      String(st.stableTs),
      `${st.unstable}/${st.retained}`,
      st.digest,
      String(dropped),
      describeFaults(st.faults),
    ];
  });
  printTable(['server', 'state', 'pid', 'view', 'seq vector', 'clock', 'stable ts', 'held (tentative/retained)', 'digest', 'bad datagrams', 'injected faults'], rows);
  const notes = statuses.flatMap((st) => (st ? serverNotes(st) : []));
  if (notes.length > 0) console.log(`\n${notes.join('\n')}`);
}

/** What a person should know beyond the table: why datagrams were dropped, a storage failure. */
function serverNotes(st: ServerStatus): string[] {
  const notes: string[] = [];
  const reasons = dropReasons.filter((r) => st.transport.dropped[r] > 0).map((r) => `${r} ${st.transport.dropped[r]}`);
  if (reasons.length > 0) notes.push(`server ${st.id} dropped datagrams: ${reasons.join(', ')}`);
  if (st.storageError !== undefined) notes.push(`server ${st.id} STORAGE FAILED, accepting no operations until relaunched: ${st.storageError}`);
  return notes;
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

function parseGroup(text: string, config: ClusterConfig): number[] {
  return text.split(',').map((part) => {
    if (!/^\d+$/.test(part.trim())) throw new ChorusError('INVALID_ARGUMENT', `"${text}" is not a list of server numbers like 1,2`);
    return serverById(config, Number(part)).id;
  });
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

async function loss(args: Common & { i: number; j: number; percent: string; oneway: boolean }): Promise<void> {
  const p = parsePercent(String(args.percent));
  const result = await open(args).loss(args.i, args.j, p, args.oneway);
  for (const r of result) {
    console.log(`server ${r.from} -> ${r.to}: dropping ${Math.round(p * 1000) / 10}% of datagrams${r.down ? ' (down: applies when relaunched)' : ''}`);
  }
}

async function heal(args: Common): Promise<void> {
  await open(args).heal();
  console.log('Healed: no partitions, no injected loss.');
}

const idArg = (y: ReturnType<typeof yargs>) =>
  y.positional('id', { type: 'number', demandOption: true, describe: 'server number (line in clusterconfig)' });

const fail = (err: Error): never => {
  process.stderr.write(`tools/cluster: ${err instanceof ChorusError ? err.message : (err.stack ?? err.message)}\n`);
  process.exit(2);
};

yargs(hideBin(process.argv))
  .scriptName('tools/cluster')
  .usage('$0 <command> [options]\n\nRun, stop and break the local Chorus cluster described by clusterconfig.')
  .option('config', { type: 'string', default: 'clusterconfig', describe: 'cluster configuration file' })
  .option('data-root', { type: 'string', default: 'data', describe: 'where daemons keep log files, pid files and daemon logs' })
  .command('start', 'start every daemon not running, in the background, and wait until all answer', {}, (a) => start(a as unknown as Common))
  .command('stop', 'stop every daemon (clean shutdown)', {}, (a) => stop(a as unknown as Common))
  .command('keygen', 'create the cluster key <data-root>/cluster.key (mode 0600) unless it exists; start does this too', {}, (a) => keygen(a as unknown as Common))
  .command(
    'status',
    'per server: up/down, pid, view, seq vector, clock, stable point, messages held, state digest, dropped datagrams, faults',
    (y) => y.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
    (a) => status(a as unknown as Common & { json: boolean }),
  )
  .command('kill <id>', 'crash a server (SIGKILL, no clean shutdown)', idArg, (a) => kill(a as unknown as Common & { id: number }))
  .command('relaunch <id>', 'start a killed server again from its log files', idArg, (a) => relaunch(a as unknown as Common & { id: number }))
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
      y
        .positional('i', { type: 'number', demandOption: true, describe: 'server' })
        .positional('j', { type: 'number', demandOption: true, describe: 'server' })
        .positional('percent', { type: 'string', demandOption: true, describe: 'like 30 or 30%' })
        .option('oneway', { type: 'boolean', default: false, describe: 'only datagrams from i to j' }),
    (a) => loss(a as unknown as Common & { i: number; j: number; percent: string; oneway: boolean }),
  )
  .command('heal', 'remove every partition and injected loss', {}, (a) => heal(a as unknown as Common))
  .demandCommand(1, 'Name a command: start, stop, keygen, status, kill, relaunch, partition, loss, heal.')
  .strict()
  .help()
  .alias('help', 'h')
  .fail((msg, err, y) => {
    if (err) fail(err);
    process.stderr.write(`${y.help()}\n\ntools/cluster: ${msg}\n`);
    process.exit(2);
  })
  .parseAsync()
  .catch(fail);
