#!/usr/bin/env node
/**
 * tools/cluster: run and manage the local cluster of clusterconfig.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ChorusConnection } from '../client/connection.js';
import { loadClusterConfig, serverById, type ClusterConfig, type ServerAddress } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import type { DaemonStatus } from '../daemon/daemon.js';
import { noFaultSettings, type FaultSettings } from '../transport/faults.js';
import { loadFaults, saveFaults } from '../transport/faultsFile.js';
import { controlCall, daemonLogFile, launchDaemon, runningPid, serverDir, stopDaemon, type LocalClusterPaths } from './localCluster.js';

interface Common {
  config: string;
  'data-root': string;
}

function setup(args: Common): { config: ClusterConfig; paths: LocalClusterPaths } {
  return { config: loadClusterConfig(args.config), paths: { dataRoot: args['data-root'], configFile: args.config } };
}

/** Whether the server answers a status call on its client port. */
async function answers(server: ServerAddress): Promise<boolean> {
  try {
    const connection = await ChorusConnection.connect(`${server.host}:${server.clientPort}`, 1000);
    try {
      await connection.call('status');
      return true;
    } finally {
      connection.close();
    }
  } catch {
    return false;
  }
}

/** Wait until a freshly launched daemon answers on its client port, or fail with its last log lines. */
async function waitStarted(paths: LocalClusterPaths, server: ServerAddress, logOffset: number, timeoutMs = 15_000): Promise<void> {
  const id = server.id;
  const file = daemonLogFile(paths, id);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(file) ? readFileSync(file, 'utf8').slice(logOffset) : '';
    if (text.includes(`started server ${id} `) && (await answers(server))) return;
    if (runningPid(paths, id) === undefined || Date.now() > deadline) {
      const tail = text.trim().split('\n').slice(-5).join('\n');
      throw new ChorusError('INVALID_ARGUMENT', `server ${id} did not start (see ${file}):\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function start(args: Common): Promise<void> {
  const { config, paths } = setup(args);
  const up = config.servers.filter((s) => runningPid(paths, s.id) !== undefined);
  if (up.length === config.servers.length) {
    console.log(`The cluster is already running (${up.map((s) => `server ${s.id}: pid ${runningPid(paths, s.id)}`).join(', ')}); nothing changed.`);
    return;
  }
  for (const server of config.servers) {
    if (runningPid(paths, server.id) !== undefined) continue;
    const file = daemonLogFile(paths, server.id);
    const offset = existsSync(file) ? statSync(file).size : 0;
    launchDaemon(paths, server);
    await waitStarted(paths, server, offset);
  }
  for (const s of config.servers) {
    console.log(`server ${s.id}: pid ${runningPid(paths, s.id)}, UDP ${s.host}:${s.udpPort}, clients ${s.host}:${s.clientPort}, log ${daemonLogFile(paths, s.id)}`);
  }
  console.log(`The cluster is up (${config.servers.length} servers).`);
  console.log(`Chat: make client SERVER=1 (any of 1-${config.servers.length}). Break it: tools/cluster --help. Stop it: make stop`);
}

async function stop(args: Common): Promise<void> {
  const { config, paths } = setup(args);
  let stopped = 0;
  for (const s of config.servers) if (await stopDaemon(paths, s.id, 'SIGTERM')) stopped++;
  console.log(stopped === 0 ? 'No daemon was running.' : `Stopped ${stopped} daemon${stopped === 1 ? '' : 's'}.`);
}

async function kill(args: Common & { id: number }): Promise<void> {
  const { config, paths } = setup(args);
  serverById(config, args.id);
  const killed = await stopDaemon(paths, args.id, 'SIGKILL');
  console.log(killed ? `Killed server ${args.id} (SIGKILL: no clean shutdown).` : `Server ${args.id} was not running.`);
}

async function relaunch(args: Common & { id: number }): Promise<void> {
  const { config, paths } = setup(args);
  const server = serverById(config, args.id);
  const pid = runningPid(paths, args.id);
  if (pid !== undefined) {
    console.log(`Server ${args.id} is already running (pid ${pid}).`);
    return;
  }
  const file = daemonLogFile(paths, args.id);
  const offset = existsSync(file) ? statSync(file).size : 0;
  launchDaemon(paths, server);
  await waitStarted(paths, server, offset);
  console.log(`Relaunched server ${args.id} (pid ${runningPid(paths, args.id)}) from its log files.`);
}

type Status = DaemonStatus & { faults: FaultSettings; sessions: number };

async function statusOf(paths: LocalClusterPaths, id: number): Promise<Status | undefined> {
  return controlCall<Status>(paths, id, 'status');
}

async function status(args: Common & { json: boolean }): Promise<void> {
  const { config, paths } = setup(args);
  const statuses = await Promise.all(config.servers.map((s) => statusOf(paths, s.id)));
  if (args.json) {
    const out = config.servers.map((s, i) => ({ id: s.id, up: statuses[i] !== undefined, pid: runningPid(paths, s.id) ?? null, status: statuses[i] ?? null }));
    console.log(JSON.stringify(out, null, 2));
    return;
  }
  const rows = config.servers.map((s, i) => {
    const st = statuses[i];
    if (!st) return [String(s.id), 'down', String(runningPid(paths, s.id) ?? '-'), '', '', '', '', '', '', '', ''];
    const dropped = Object.values(st.transport.dropped).reduce((a, b) => a + b, 0);
    return [
      String(s.id),
      'up',
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
  printTable(['server', 'state', 'pid', 'view', 'seq vector', 'clock', 'stable ts', 'held (unstable/retained)', 'digest', 'bad datagrams', 'injected faults'], rows);
}

function describeFaults(f: FaultSettings): string {
  const parts = [
    f.blocked.length > 0 ? `cut off {${f.blocked.join(',')}}` : '',
    ...Object.entries(f.lossTo).map(([to, p]) => `${Math.round(p * 100)}% loss to ${to}`),
    ...Object.entries(f.lossFrom).map(([from, p]) => `${Math.round(p * 100)}% loss from ${from}`),
  ].filter((p) => p !== '');
  return parts.length > 0 ? parts.join(', ') : '-';
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}

/** Apply fault settings to one server: through its control endpoint if it runs, else in its faults file for its next start. */
async function applyFaults(paths: LocalClusterPaths, id: number, settings: FaultSettings): Promise<'live' | 'saved'> {
  const answer = await controlCall(paths, id, 'setFaults', settings as unknown as Record<string, unknown>);
  if (answer !== undefined) return 'live';
  mkdirSync(serverDir(paths, id), { recursive: true });
  saveFaults(serverDir(paths, id), settings);
  return 'saved';
}

async function currentFaults(paths: LocalClusterPaths, id: number, serverCount: number): Promise<FaultSettings> {
  const st = await statusOf(paths, id);
  return st ? st.faults : loadFaults(serverDir(paths, id), serverCount);
}

function parseGroup(text: string, config: ClusterConfig): number[] {
  return text.split(',').map((part) => {
    if (!/^\d+$/.test(part.trim())) throw new ChorusError('INVALID_ARGUMENT', `"${text}" is not a list of server numbers like 1,2`);
    return serverById(config, Number(part)).id;
  });
}

async function partition(args: Common & { groups: string[] }): Promise<void> {
  const { config, paths } = setup(args);
  const groups = args.groups.map((g) => parseGroup(g, config));
  const named = groups.flat();
  const twice = named.find((id, i) => named.indexOf(id) !== i);
  if (twice !== undefined) throw new ChorusError('INVALID_ARGUMENT', `server ${twice} is in two groups`);
  for (const s of config.servers) {
    const mine = groups.find((g) => g.includes(s.id)) ?? [s.id];
    const blocked = config.servers.map((o) => o.id).filter((id) => !mine.includes(id));
    const current = await currentFaults(paths, s.id, config.servers.length);
    const how = await applyFaults(paths, s.id, { ...current, blocked });
    console.log(`server ${s.id}: hears {${mine.join(',')}}${how === 'saved' ? ' (down: applies when relaunched)' : ''}`);
  }
}

function parsePercent(text: string): number {
  const match = /^(\d+(?:\.\d+)?)%?$/.exec(text.trim());
  const value = match ? Number(match[1]) : NaN;
  if (!(value >= 0 && value <= 100)) throw new ChorusError('INVALID_ARGUMENT', `loss "${text}" is not a percentage from 0 to 100 (like 30 or 30%)`);
  return value / 100;
}

async function loss(args: Common & { i: number; j: number; percent: string; oneway: boolean }): Promise<void> {
  const { config, paths } = setup(args);
  const i = serverById(config, args.i).id;
  const j = serverById(config, args.j).id;
  if (i === j) throw new ChorusError('INVALID_ARGUMENT', 'loss needs two different servers');
  const p = parsePercent(String(args.percent));
  const links: [number, number][] = args.oneway ? [[i, j]] : [[i, j], [j, i]];
  for (const [from, to] of links) {
    const current = await currentFaults(paths, from, config.servers.length);
    const lossTo: Record<string, number> = { ...current.lossTo, [to]: p };
    if (p === 0) delete lossTo[to];
    const how = await applyFaults(paths, from, { ...current, lossTo });
    console.log(`server ${from} -> ${to}: dropping ${Math.round(p * 1000) / 10}% of datagrams${how === 'saved' ? ' (down: applies when relaunched)' : ''}`);
  }
}

async function heal(args: Common): Promise<void> {
  const { config, paths } = setup(args);
  for (const s of config.servers) await applyFaults(paths, s.id, noFaultSettings);
  console.log('Healed: no partitions, no injected loss.');
}

const idArg = (y: ReturnType<typeof yargs>) =>
  y.positional('id', { type: 'number', demandOption: true, describe: 'server number (line in clusterconfig)' });

yargs(hideBin(process.argv))
  .scriptName('tools/cluster')
  .usage('$0 <command> [options]\n\nRun, stop and break the local Chorus cluster described by clusterconfig.')
  .option('config', { type: 'string', default: 'clusterconfig', describe: 'cluster configuration file' })
  .option('data-root', { type: 'string', default: 'data', describe: 'where daemons keep log files, pid files and daemon logs' })
  .command('start', 'start every daemon not running, in the background, and wait until all are up', {}, (a) => start(a as unknown as Common))
  .command('stop', 'stop every daemon (clean shutdown)', {}, (a) => stop(a as unknown as Common))
  .command('kill <id>', 'crash a server (SIGKILL, no clean shutdown)', idArg, (a) => kill(a as unknown as Common & { id: number }))
  .command('relaunch <id>', 'start a killed server again from its log files', idArg, (a) => relaunch(a as unknown as Common & { id: number }))
  .command(
    'status',
    'per server: up/down, pid, view, seq vector, clock, stable point, messages held, state digest, dropped datagrams, faults',
    (y) => y.option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
    (a) => status(a as unknown as Common & { json: boolean }),
  )
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
  .demandCommand(1, 'Name a command: start, stop, status, kill, relaunch, partition, loss, heal.')
  .strict()
  .help()
  .alias('help', 'h')
  .fail((msg, err, y) => {
    if (err) {
      process.stderr.write(`tools/cluster: ${err instanceof ChorusError ? err.message : (err.stack ?? err.message)}\n`);
    } else {
      process.stderr.write(`${y.help()}\n\ntools/cluster: ${msg}\n`);
    }
    process.exit(2);
  })
  .parseAsync()
  .catch((err: Error) => {
    process.stderr.write(`tools/cluster: ${err instanceof ChorusError ? err.message : (err.stack ?? err.message)}\n`);
    process.exit(2);
  });
