/**
 * A test cluster of real daemon processes on free ports, with its own
 * temporary config and data directory (never the user's cluster), and
 * scripted terminal clients as real processes. Everything started here is
 * stopped by pid in destroy(), which tests call in afterEach.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChorusConnection } from '../../src/client/connection.js';
import { loadClusterConfig, type ClusterConfig } from '../../src/config/clusterConfig.js';
import { ensureClusterKey } from '../../src/config/clusterKey.js';
import { processAlive } from '../../src/storage/fileSystem.js';
import { clusterKeyFile, consolePid, daemonLogFile, launchDaemon, pidFile, type LocalClusterPaths } from '../../src/tools/clusterProcesses.js';
import { freePorts } from '../../src/tools/freePorts.js';

const distRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const clientMain = join(distRoot, 'src/client/main.js');
const toolMain = (name: string) => join(distRoot, `src/tools/${name}.js`);
const execFileAsync = promisify(execFile);

export const fastDaemonArgs = ['--status-interval-ms', '50', '--view-timeout-ms', '500', '--nack-retry-ms', '20'];

export async function waitUntil(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}


export class ProcessCluster {
  readonly pids = new Map<number, number>();
  private readonly clients: ScriptedClient[] = [];

  private constructor(
    readonly root: string,
    readonly config: ClusterConfig,
    readonly paths: LocalClusterPaths,
  ) {}

  static async create(serverCount: number): Promise<ProcessCluster> {
    const root = mkdtempSync(join(tmpdir(), 'chorus-procs-'));
    const ports = await freePorts(serverCount * 2);
    const configFile = join(root, 'clusterconfig');
    writeFileSync(configFile, Array.from({ length: serverCount }, (_, i) => `127.0.0.1 ${ports[2 * i]} ${ports[2 * i + 1]}\n`).join(''));
    const paths = { dataRoot: join(root, 'data'), configFile };
    ensureClusterKey(clusterKeyFile(paths));
    return new ProcessCluster(root, loadClusterConfig(configFile), paths);
  }

  async start(id: number): Promise<void> {
    const server = this.config.servers[id - 1];
    const pid = launchDaemon(this.paths, server, fastDaemonArgs);
    this.pids.set(id, pid);
    await waitUntil(
      async () => {
        if (!processAlive(pid)) throw new Error(`the daemon of server ${id} exited while starting; its log ends:\n${this.logTail(id)}`);
        return this.answers(id);
      },
      15_000,
      () => `server ${id} answers; its log ends:\n${this.logTail(id)}`,
    );
  }

  /** The last lines of server id's daemon log, for a failure message. */
  logTail(id: number, lines = 20): string {
    const file = daemonLogFile(this.paths, id);
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n') : '(no log file)';
  }

  async startAll(): Promise<void> {
    await Promise.all(this.config.servers.map((s) => this.start(s.id)));
  }

  kill(id: number): void {
    const pid = this.pids.get(id);
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
    this.pids.delete(id);
  }

  async answers(id: number): Promise<boolean> {
    const s = this.config.servers[id - 1];
    try {
      const c = await ChorusConnection.connect(`${s.host}:${s.clientPort}`, 1000);
      c.close();
      return true;
    } catch {
      return false;
    }
  }

  client(serverId: number): ScriptedClient {
    const child = spawn(process.execPath, [clientMain, '--config', this.paths.configFile, '--server', String(serverId)], { stdio: ['pipe', 'pipe', 'pipe'] });
    const client = new ScriptedClient(child);
    this.clients.push(client);
    return client;
  }

  /** Run tools/<name> (cluster, inspect) against this test cluster; returns its standard output. */
  async tool(name: 'cluster' | 'inspect' | 'chaos', ...args: string[]): Promise<string> {
    try {
      const { stdout } = await execFileAsync(process.execPath, [toolMain(name), ...args, '--config', this.paths.configFile, '--data-root', this.paths.dataRoot]);
      return stdout;
    } catch (err) {
      const e = err as Error & { stdout?: string; stderr?: string };
      throw new Error(`tools/${name} ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: err });
    } finally {
      this.adoptPids();
    }
  }

  /** Run tools/<name> and return its exit code and output, whatever the code. */
  async toolRun(name: 'cluster' | 'inspect' | 'chaos', ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await execFileAsync(process.execPath, [toolMain(name), ...args, '--config', this.paths.configFile, '--data-root', this.paths.dataRoot]);
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as Error & { code?: number; stdout?: string; stderr?: string };
      if (typeof e.code !== 'number') throw err;
      return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    } finally {
      this.adoptPids();
    }
  }

  /** Run the terminal client on server id with these lines as its standard input (a script); its exit code and output. */
  async clientScript(id: number, lines: readonly string[]): Promise<{ code: number; stdout: string }> {
    const child = spawn(process.execPath, [clientMain, '--config', this.paths.configFile, '--server', String(id)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stdin.end(lines.map((l) => `${l}\n`).join(''));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? -1)));
    clearTimeout(timer);
    return { code, stdout };
  }

  /** Track the daemons tools/cluster started (by their pid files) so destroy() stops them. */
  adoptPids(): void {
    for (const s of this.config.servers) {
      const file = pidFile(this.paths, s.id);
      if (existsSync(file)) this.pids.set(s.id, Number(readFileSync(file, 'utf8')));
    }
  }

  async destroy(): Promise<void> {
    this.adoptPids();
    // tools/cluster start runs a web console too: stopped by its pid file like the daemons.
    const consoleProcess = consolePid(this.paths);
    if (consoleProcess !== undefined) process.kill(consoleProcess, 'SIGKILL');
    for (const c of this.clients) c.kill();
    for (const id of [...this.pids.keys()]) this.kill(id);
    await new Promise((r) => setTimeout(r, 50));
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** A terminal client process driven through its standard input. */
export class ScriptedClient {
  readonly lines: string[] = [];
  private buffered = '';

  constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (chunk: Buffer) => {
      this.buffered += chunk.toString();
      const parts = this.buffered.split('\n');
      this.buffered = parts.pop() ?? '';
      this.lines.push(...parts);
    });
    child.stderr!.on('data', (chunk: Buffer) => this.lines.push(...chunk.toString().trimEnd().split('\n')));
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** Wait for a line matching `pattern` after line index `from`; returns its index. */
  async waitFor(pattern: RegExp, from = 0, timeoutMs = 10_000): Promise<number> {
    let found = -1;
    await waitUntil(
      () => {
        found = this.lines.findIndex((l, i) => i >= from && pattern.test(l));
        return found >= 0;
      },
      timeoutMs,
      () => `client output matching ${pattern} (got:\n${this.lines.slice(from).join('\n')})`,
    );
    return found;
  }

  /** Send a command and wait for its answer. */
  async run(line: string, answer: RegExp, timeoutMs = 10_000): Promise<number> {
    const from = this.lines.length;
    this.send(line);
    return this.waitFor(answer, from, timeoutMs);
  }

  /** The last displayed group block: header and numbered lines. */
  lastScreen(): string[] {
    const header = this.lines.findLastIndex((l) => l.startsWith('--- '));
    if (header < 0) return [];
    const block = [this.lines[header]];
    for (let i = header + 1; i < this.lines.length && /^\s*\d+\. /.test(this.lines[i]); i++) block.push(this.lines[i]);
    return block;
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
