#!/usr/bin/env node
/**
 * tools/console: the web console of a running local cluster (make run starts
 * one too). Prints its address and serves until stopped.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { configDefaultText, configOfDataRoot, dataRootDefaultText, defaultDataRoot, exitCode, exitWith, usageFailure } from '../commandLine.js';
import { loadClusterConfig } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { LocalCluster } from '../tools/localCluster.js';
import { defaultConsolePort } from '../tools/clusterProcesses.js';
import { ConsoleServer } from './consoleServer.js';

interface Args {
  port: number;
  config: string;
  'data-root': string;
}

async function main(args: Args): Promise<void> {
  const cluster = new LocalCluster(loadClusterConfig(args.config), { dataRoot: args['data-root'], configFile: args.config });
  const server = await ConsoleServer.start(cluster, { port: args.port });
  console.log(`Chorus console: ${server.url} (the cluster of ${args.config}; loopback only). Ctrl-C stops it.`);
  const stop = () => void server.close().then(() => process.exit(exitCode.ok));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

const fail = (err: Error): never => exitWith('tools/console', err instanceof ChorusError ? err.message : (err.stack ?? err.message), exitCode.usage);

void yargs(hideBin(process.argv))
  .scriptName('tools/console')
  .usage('$0 [options]\n\nServe the web console of the running local cluster on 127.0.0.1: the servers and links live, faults from the page, a timeline, a chat pane.')
  .option('port', { type: 'number', default: defaultConsolePort, describe: 'port on 127.0.0.1 (0: any free port)' })
  .option('config', { type: 'string', defaultDescription: configDefaultText, describe: 'cluster configuration file' })
  .option('data-root', { type: 'string', default: defaultDataRoot, defaultDescription: dataRootDefaultText, describe: 'where the daemons keep their files (the cluster key is read there)' })
  .middleware(configOfDataRoot)
  .check((a) => {
    if (!Number.isInteger(a.port) || a.port < 0 || a.port > 65535) throw new Error(`--port takes a port number from 0 to 65535, got ${String(a.port)}`);
    return true;
  })
  .strict()
  .help()
  .alias('help', 'h')
  .fail(usageFailure('tools/console', fail))
  .parseAsync()
  .then((a) => main(a as unknown as Args))
  .catch(fail);
