#!/usr/bin/env node
/**
 * tools/cluster: run and manage the local cluster of clusterconfig.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ChorusConnection } from '../client/connection.js';
import { loadClusterConfig, serverById, type ClusterConfig, type ServerAddress } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { daemonLogFile, launchDaemon, runningPid, stopDaemon, type LocalClusterPaths } from './localCluster.js';

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
  console.log(`The cluster is up (${config.servers.length} servers). Stop it with: make stop`);
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
  .demandCommand(1, 'Name a command: start, stop, kill, relaunch.')
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
