/**
 * One exit-code convention for every command (src/commandLine.ts): 0 done,
 * 1 the checked condition failed, 2 usage or environment error; a usage
 * error is at most two lines, not the whole help.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { processAlive } from '../src/storage/fileSystem.js';

const srcRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../src');
const mains: Record<string, string> = {
  chorusd: 'daemon/main.js',
  'tools/client': 'client/main.js',
  'tools/cluster': 'tools/cluster.js',
  'tools/inspect': 'tools/inspect.js',
  'tools/chaos': 'tools/chaos.js',
  'tools/bench': 'bench/bench.js',
  'tools/sim': 'sim/main.js',
  'tools/layers': 'tools/layers.js',
  'tools/console': 'console/main.js',
};

/** What each command needs besides options, so that the unknown option is the only mistake. */
const requiredArgs: Record<string, string[]> = { chorusd: ['--id', '1'], 'tools/cluster': ['status'], 'tools/inspect': ['1'] };

function run(command: string, args: string[], dir: string): { code: number | null; stdout: string; stderr: string } {
  // The configuration and data root from the environment, so the commands run from any directory.
  const env = { ...process.env, CHORUS_CONFIG: join(dir, 'clusterconfig'), CHORUS_DATA_ROOT: join(dir, 'data') };
  const result = spawnSync(process.execPath, [join(srcRoot, mains[command]), ...args], { cwd: tmpdir(), env, encoding: 'utf8', input: '', timeout: 30_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('command line: exit codes and usage errors', function () {
  this.timeout(120_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'chorus-cli-'));
    // Ports nothing listens on: a command that would reach a server finds none.
    writeFileSync(join(dir, 'clusterconfig'), '127.0.0.1 1 2\n127.0.0.1 3 4\n127.0.0.1 5 6\n');
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  const usageErrors: [string, string[], RegExp][] = [
    ...Object.keys(mains).map((command): [string, string[], RegExp] => [command, [...(requiredArgs[command] ?? []), '--bogus'], /Unknown argument: bogus/]),
    ['chorusd', ['--id', '1', '--log-level', 'foo'], /Invalid values:[\s\S]*log-level/],
    ['chorusd', ['--id', '1', '--allow-origin', 'https://example.org/page'], /--allow-origin takes an origin like http:\/\/127\.0\.0\.1:7300/],
    ['chorusd', ['--id', '1', '--control-host', 'example.org'], /--control-host takes an IP address of this machine, got "example.org"/],
    ['tools/cluster', ['kill', 'abc'], /"abc" is not a server number \(servers 1-3\)/],
    ['tools/cluster', ['kill', '9'], /server 9 is not in \S*clusterconfig \(servers 1-3\)/],
    ['tools/cluster', [], /name a command/],
    ['tools/inspect', ['3', '--diff'], /Not enough arguments following: diff/],
    ['tools/inspect', ['9'], /no such data directory/],
    ['tools/client', ['--server', '9'], /there is no server 9/],
    ['tools/client', ['--server', '1'], /cannot connect to 127\.0\.0\.1:2/],
    ['tools/sim', ['--servers', '12'], /--servers must be from 3 to 9/],
    ['tools/cluster', ['start', '--servers', '12'], /--servers takes a number from 3 to 9, got 12/],
    ['tools/cluster', ['start', '--servers', '4'], /leave out --config and CHORUS_CONFIG/],
    ['tools/console', ['--port', '99999'], /--port takes a port number from 0 to 65535/],
  ];

  for (const [command, args, message] of usageErrors) {
    it(`${command} ${args.join(' ')}: exits 2 with the reason in at most two lines`, () => {
      const { code, stdout, stderr } = run(command, args, dir);
      const output = `${stdout}${stderr}`.trimEnd();
      expect(output).to.match(message);
      expect(output.split('\n'), output).to.have.length.at.most(2);
      expect(code).to.equal(2);
    });
  }

  it('tools/cluster start --servers refuses a data root holding another cluster\'s log files, and writes none', () => {
    const root = join(dir, 'other-root');
    mkdirSync(join(root, 'server1'), { recursive: true });
    const env = { ...process.env, CHORUS_CONFIG: '', CHORUS_DATA_ROOT: root };
    const result = spawnSync(process.execPath, [join(srcRoot, mains['tools/cluster']), 'start', '--servers', '4', '--no-console'], { cwd: tmpdir(), env, encoding: 'utf8', timeout: 30_000 });
    expect(result.stderr).to.match(/holds the log files of a cluster of 5 servers; to start a cluster of 4, stop it \(tools\/cluster stop\) and remove \S+ first/);
    expect(result.status).to.equal(2);
    expect(existsSync(join(root, 'clusterconfig'))).to.equal(false);
  });

  it('--help prints the usage and exits 0', () => {
    for (const command of Object.keys(mains)) {
      const { code, stdout } = run(command, ['--help'], dir);
      expect(stdout, command).to.include('--help');
      expect(code, command).to.equal(0);
    }
  });
});

describe('processAlive: what the tools wait on when they stop a daemon', () => {
  it('counts a process that exited but was not reaped yet (a zombie) as gone', async function () {
    if (!existsSync('/proc/self/stat')) this.skip();
    // The shell starts a short sleep, then becomes a long one that never reaps it.
    const parent = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const child = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
      expect(processAlive(child)).to.equal(true);
      await new Promise((r) => setTimeout(r, 600));
      // Signal 0 still reaches the zombie, but it is not running.
      expect(() => process.kill(child, 0)).not.to.throw();
      expect(processAlive(child)).to.equal(false);
      expect(processAlive(parent.pid!)).to.equal(true);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
