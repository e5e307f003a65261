#!/usr/bin/env node
/**
 * chorusd: run server <id> of the cluster in clusterconfig.
 */
import { configDefaultText, dataRootDefaultText, defaultConfigFile, defaultDataRoot, usageFailure } from '../commandLine.js';
import { dirname, join } from 'node:path';
import { isIP } from 'node:net';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadClusterConfig } from '../config/clusterConfig.js';
import { clusterKeyFileName, loadClusterKey } from '../config/clusterKey.js';
import { ChorusError } from '../errors.js';
import { defaultEngineTimers } from '../broadcast/options.js';
import { ChatServer } from './chatServer.js';
import { defaultMaxOpenRequestsPerUser, defaultRpcLimits } from '../rpc/protocol.js';
import { defaultSnapshotIntervalMs, defaultSnapshotJournalBytes } from '../node/node.js';
import { createLogger, logLevels, type LogLevel } from './logger.js';

const argv = yargs(hideBin(process.argv))
  .scriptName('chorusd')
  .usage('$0 --id <n> [options]\n\nRun server <n> of a Chorus cluster: the replicated group chat on a reliable, totally ordered broadcast over UDP, with its log files, serving clients (JSON-RPC over WebSocket) on its client port.')
  .option('id', { type: 'number', demandOption: true, describe: 'this server: line <n> of the cluster configuration' })
  .option('config', { type: 'string', default: defaultConfigFile, defaultDescription: configDefaultText, describe: 'cluster configuration file' })
  .option('data-dir', { type: 'string', describe: `log files directory (default: server<id> in ${dataRootDefaultText})` })
  .option('key-file', { type: 'string', describe: `the cluster key (default: ${clusterKeyFileName} next to the data directory, e.g. data/${clusterKeyFileName})` })
  .option('insecure', { type: 'boolean', default: false, describe: 'run without a cluster key: anyone who can reach the UDP port can inject traffic' })
  .option('log-level', { choices: logLevels, default: 'info' as LogLevel, describe: 'debug logs every packet' })
  .option('status-interval-ms', { type: 'number', default: defaultEngineTimers.statusIntervalMs, describe: 'heartbeat / anti-entropy period' })
  .option('ack-delay-ms', { type: 'number', default: defaultEngineTimers.ackDelayMs, describe: 'least time between two prompt acknowledgements' })
  .option('view-timeout-ms', { type: 'number', default: defaultEngineTimers.viewTimeoutMs, describe: 'a server silent this long leaves the view' })
  .option('nack-retry-ms', { type: 'number', default: defaultEngineTimers.nackRetryMs, describe: 'resend an unanswered NACK after this long' })
  .option('max-datagram-bytes', { type: 'number', describe: 'pack messages up to this size (default: 32768 on loopback, else 1400)' })
  .option('snapshot-journal-bytes', { type: 'number', default: defaultSnapshotJournalBytes, describe: 'snapshot when the journal reaches this size, or the last snapshot\'s size if larger' })
  .option('snapshot-interval-ms', { type: 'number', default: defaultSnapshotIntervalMs, describe: 'snapshot an idle daemon after this long' })
  .option('max-connections', { type: 'number', default: defaultRpcLimits.maxConnections, describe: 'client connections at once; one more is told so and closed' })
  .option('max-requests-per-second', { type: 'number', default: defaultRpcLimits.requestsPerSecond, describe: 'requests per second per client connection; more get an error' })
  .option('max-frame-bytes', { type: 'number', default: defaultRpcLimits.maxFrameBytes, describe: 'bytes in one client request; a larger one gets an error' })
  .option('max-open-requests-per-user', { type: 'number', default: defaultMaxOpenRequestsPerUser, describe: 'stream request ids one user may have unacknowledged (remembered by every server until the client sends doneBelow); one more gets an error' })
  .option('control-host', { type: 'string', default: '127.0.0.1', describe: 'address of the control endpoint (tools/cluster); off loopback only the cluster key\'s token guards it, so use a trusted network (the namespaced cluster uses each server\'s own address)' })
  .option('allow-origin', { type: 'string', array: true, default: [] as string[], describe: 'a web page origin (e.g. http://127.0.0.1:7300) whose scripts may use the client port; browsers from any other origin are refused' })
  .check((args) => {
    if (args.insecure && args['key-file'] !== undefined) throw new Error('--insecure and --key-file exclude each other: choose one');
    for (const key of ['max-connections', 'max-requests-per-second', 'max-frame-bytes', 'max-open-requests-per-user'] as const) {
      if (!Number.isInteger(args[key]) || args[key] < 1) throw new Error(`--${key} must be a positive integer, got ${String(args[key])}`);
    }
    for (const key of ['id', 'status-interval-ms', 'ack-delay-ms', 'view-timeout-ms', 'nack-retry-ms', 'snapshot-journal-bytes', 'snapshot-interval-ms'] as const) {
      const value = args[key];
      if (!Number.isFinite(value) || value < 0) throw new Error(`--${key} must be a non-negative number, got ${String(value)}`);
    }
    if (!Number.isInteger(args.id) || args.id < 1) throw new Error(`--id must be a server number (1, 2, ...), got ${args.id}`);
    for (const origin of args['allow-origin']) {
      if (!/^https?:\/\/[^/\s]+$/.test(origin)) throw new Error(`--allow-origin takes an origin like http://127.0.0.1:7300 (scheme, host, port; no path), got "${origin}"`);
    }
    if (isIP(args['control-host']) === 0) throw new Error(`--control-host takes an IP address of this machine, got "${args['control-host']}"`);
    const bytes = args['max-datagram-bytes'];
    if (bytes !== undefined && (!Number.isInteger(bytes) || bytes < 512 || bytes > 65507)) {
      throw new Error(`--max-datagram-bytes must be an integer from 512 to 65507, got ${bytes}`);
    }
    return true;
  })
  .strict()
  .help()
  .alias('help', 'h')
  .fail(usageFailure('chorusd'))
  .parseSync();

const insecureWarning =
  'RUNNING WITHOUT A CLUSTER KEY (--insecure): datagrams are not authenticated; anyone who can reach this UDP port can forge, alter or replay protocol traffic';

async function main(): Promise<void> {
  const config = loadClusterConfig(argv.config);
  const dataDir = argv['data-dir'] ?? join(defaultDataRoot, `server${argv.id}`);
  const clusterKey = argv.insecure ? Buffer.alloc(0) : loadClusterKey(argv['key-file'] ?? join(dirname(dataDir), clusterKeyFileName));
  // `pgrep -a chorusd` finds the daemons, each named by its server.
  process.title = `chorusd ${argv.id}`;
  const logger = createLogger(argv.id, argv['log-level']);
  if (argv.insecure) {
    process.stderr.write(`chorusd: WARNING: ${insecureWarning}\n`);
    logger.warn(insecureWarning);
  }
  const server = await ChatServer.start({
    id: argv.id,
    config,
    dataDir,
    clusterKey,
    logger,
    timers: {
      statusIntervalMs: argv['status-interval-ms'],
      ackDelayMs: argv['ack-delay-ms'],
      viewTimeoutMs: argv['view-timeout-ms'],
      nackRetryMs: argv['nack-retry-ms'],
    },
    maxDatagramBytes: argv['max-datagram-bytes'],
    snapshotJournalBytes: argv['snapshot-journal-bytes'],
    snapshotIntervalMs: argv['snapshot-interval-ms'],
    controlHost: argv['control-host'],
    rpcLimits: {
      maxConnections: argv['max-connections'],
      requestsPerSecond: argv['max-requests-per-second'],
      maxFrameBytes: argv['max-frame-bytes'],
      allowedOrigins: argv['allow-origin'],
      maxOpenRequestsPerUser: argv['max-open-requests-per-user'],
    },
  });
  server.daemon.on('fatal', () => process.exit(1));
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info(`${signal}: shutting down`);
    server.stop().then(
      () => process.exit(0),
      (err: Error) => {
        logger.error(`shutdown failed: ${err.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err: Error) => {
  const message = err instanceof ChorusError ? err.message : `${err.stack ?? err.message}`;
  process.stderr.write(`chorusd: ${message}\n`);
  process.exit(2);
});
