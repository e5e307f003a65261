#!/usr/bin/env node
/** tools/inspect: show what a daemon's log files hold; --json for programs; --diff compares two servers. */
import { configDefaultText, configOfDataRoot, dataRootDefaultText, defaultDataRoot, exitCode, exitWith, usageFailure } from '../commandLine.js';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadClusterConfig } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { diff, inspect, locate, render } from './inspection.js';

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('tools/inspect')
    .usage('$0 <id | data dir> [--json] [--diff <id | data dir>]\n\nShow what a daemon\'s log files hold (the daemon may be running or not).')
    .positional('target', { type: 'string', describe: 'server number, or its data directory' })
    .option('config', { type: 'string', defaultDescription: configDefaultText, describe: 'cluster configuration (for the number of servers)' })
    .option('data-root', { type: 'string', default: defaultDataRoot, defaultDescription: dataRootDefaultText, describe: 'where data/server<id> directories are' })
    .middleware(configOfDataRoot)
    .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
    .option('diff', { type: 'string', requiresArg: true, describe: 'compare with another server\'s log files and print where they disagree (exit 1 if they do)' })
    .demandCommand(1, 1, 'Give one server number or data directory.')
    .strict()
    .help()
    .alias('help', 'h')
    .fail(usageFailure('tools/inspect'))
    .parseAsync();
  const serverCount = loadClusterConfig(argv.config as string).servers.length;
  const first = locate(String(argv._[0]), argv['data-root']);
  const a = inspect(first.dir, first.server, serverCount);
  if (argv.diff === undefined) {
    console.log(argv.json ? JSON.stringify(a, null, 2) : render(a));
    return;
  }
  const second = locate(argv.diff, argv['data-root']);
  const b = inspect(second.dir, second.server, serverCount);
  const differences = diff(a, b);
  if (argv.json) console.log(JSON.stringify({ a: a.server, b: b.server, identical: differences.length === 0, differences }, null, 2));
  else console.log(differences.length === 0 ? `servers ${a.server} and ${b.server} agree: same vectors, messages and chat state (digest ${a.digest})` : differences.join('\n'));
  if (differences.length > 0) process.exitCode = exitCode.checkFailed;
}

main().catch((err: Error) => exitWith('tools/inspect', err instanceof ChorusError ? err.message : (err.stack ?? err.message), exitCode.usage));
