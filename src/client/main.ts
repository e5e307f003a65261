#!/usr/bin/env node
/**
 * The terminal client. Interactive with a prompt when standard input is a
 * terminal (updates redraw without eating the line being typed); otherwise
 * it reads commands line by line and prints plain text, for scripts.
 */
import { configDefaultText, defaultConfigFile, exitCode, exitWith, usageFailure } from '../commandLine.js';
import { existsSync } from 'node:fs';
import { createInterface, clearLine, cursorTo } from 'node:readline';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadClusterConfig, type ClusterConfig } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import { ChatClient, helpText } from './terminal.js';

const argv = yargs(hideBin(process.argv))
  .scriptName('tools/client')
  .usage(`$0 [--server <id> | --connect <host:port>]\n\nThe Chorus chat client.\n\n${helpText}`)
  .option('server', { type: 'number', describe: 'connect at start to server <id> of the cluster configuration' })
  .option('connect', { type: 'string', describe: 'connect at start to <host:port>' })
  .option('config', { type: 'string', default: defaultConfigFile, defaultDescription: configDefaultText, describe: 'cluster configuration (to look up server numbers)' })
  .conflicts('server', 'connect')
  // The command list is laid out by hand: yargs would rewrap it.
  .wrap(null)
  .strict()
  .help()
  .alias('help', 'h')
  .fail(usageFailure('tools/client'))
  .parseSync();

async function main(): Promise<void> {
  let config: ClusterConfig | undefined;
  if (existsSync(argv.config)) config = loadClusterConfig(argv.config);
  else if (argv.server !== undefined) throw new ChorusError('CONFIG_UNREADABLE', `${argv.config}: not found (needed to look up server ${argv.server})`);
  const interactive = process.stdin.isTTY === true;
  const rl = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
  const print = interactive
    ? (text: string) => {
        cursorTo(process.stdout, 0);
        clearLine(process.stdout, 0);
        process.stdout.write(`${text}\n`);
        rl.prompt(true);
      }
    : (text: string) => process.stdout.write(`${text}\n`);
  const client = new ChatClient(config, { print });
  if (interactive) rl.setPrompt('> ');
  const target = argv.server !== undefined ? String(argv.server) : argv.connect;
  // Commands run one at a time, in order, after the first connection; the one the command line asks for must succeed.
  let queue = target !== undefined ? client.execute(`c ${target}`).then(() => exitUnlessConnected(client)) : Promise.resolve();
  rl.on('line', (line) => {
    queue = queue.then(async () => {
      if (client.quitRequested) return;
      await client.execute(line);
      if (client.quitRequested) rl.close();
      else if (interactive) rl.prompt();
    });
  });
  // A script whose commands failed exits 1; typing at the prompt, errors are part of the conversation.
  rl.on('close', () => void queue.then(() => client.settle()).then(() => exitAfter(client, !interactive && client.failedCommands > 0 ? exitCode.checkFailed : exitCode.ok)));
  if (interactive) rl.prompt();
}

function exitUnlessConnected(client: ChatClient): void {
  if (client.connectedTo === undefined) exitAfter(client, exitCode.usage);
}

function exitAfter(client: ChatClient, code: number): never {
  client.close();
  process.exit(code);
}

main().catch((err: Error) => exitWith('tools/client', err.message, exitCode.usage));
