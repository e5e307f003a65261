/**
 * The local cluster that `make run` starts: one background daemon process
 * per clusterconfig line, each with its pid file and daemon log under data/.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorAnswer } from '../client/calls.js';
import { ChorusConnection } from '../client/connection.js';
import type { ServerAddress } from '../config/clusterConfig.js';
import { clusterKeyFileName, loadClusterKey } from '../config/clusterKey.js';
import { ChorusError } from '../errors.js';
import { processAlive } from '../storage/fileSystem.js';
import { controlFileName, controlToken, controlTokenHeader, type ControlInfo, type ControlMethods } from '../daemon/controlServer.js';

const daemonMain = resolve(dirname(fileURLToPath(import.meta.url)), '../daemon/main.js');

export interface LocalClusterPaths {
  readonly dataRoot: string;
  readonly configFile: string;
}

export function serverDir(paths: LocalClusterPaths, id: number): string {
  return join(paths.dataRoot, `server${id}`);
}

/** The cluster key of a local cluster: next to the server directories, where chorusd looks by default. */
export function clusterKeyFile(paths: LocalClusterPaths): string {
  return join(paths.dataRoot, clusterKeyFileName);
}

export function pidFile(paths: LocalClusterPaths, id: number): string {
  return join(paths.dataRoot, `server${id}.pid`);
}

export function daemonLogFile(paths: LocalClusterPaths, id: number): string {
  return join(paths.dataRoot, `server${id}.log`);
}

/** Bytes in the files under dir (0 if it does not exist): a server's log files. */
export function diskBytes(dir: string): number {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path);
    total += st.isDirectory() ? diskBytes(path) : st.size;
  }
  return total;
}

/** The pid of server id's daemon if it is running, else undefined. */
export function runningPid(paths: LocalClusterPaths, id: number): number | undefined {
  return pidIn(pidFile(paths, id));
}

/** The pid written in a pid file if that process runs, else undefined. */
function pidIn(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && processAlive(pid) ? pid : undefined;
}

/**
 * V8's options for every process that runs a daemon's code (tools/chorusd
 * says the same). A function is optimised once it has run this much
 * bytecode, a quarter of V8's default (67,584): at a thousand appends a
 * second a daemon's code ran mostly unoptimised, each step paying for it.
 * Three alternated pairs each: at 1,000 appends/s stable here p50 14.0 ->
 * 8.9 ms (medians) and 4 % less CPU per append; flooding 1.01x the
 * throughput and 0.98x the CPU per append; heal 1.82 -> 1.67 s; catch-up
 * 2.39 -> 2.51 s (a relaunched daemon compiles more before it is warm).
 */
export const daemonNodeOptions: readonly string[] = ['--interrupt-budget=16384'];

/** CHORUS_NODE_ARGS passes options to node itself, e.g. "--cpu-prof --cpu-prof-dir=prof" to profile the daemons. */
export function nodeArgs(): string[] {
  return (process.env.CHORUS_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
}

/**
 * Start server's daemon in the background; returns its pid. `wrapper` runs
 * it inside another command that then runs node in its own place (`ip
 * netns exec <ns>`: the pid stays the daemon's).
 */
export function launchDaemon(paths: LocalClusterPaths, server: ServerAddress, extraArgs: readonly string[] = [], wrapper: readonly string[] = []): number {
  const args = [daemonMain, '--id', String(server.id), '--config', paths.configFile, '--data-dir', serverDir(paths, server.id), ...extraArgs];
  return launchInBackground(pidFile(paths, server.id), daemonLogFile(paths, server.id), [...daemonNodeOptions, ...nodeArgs(), ...args], `the daemon of server ${server.id}`, wrapper);
}

/** Run node with args, detached, its output appended to logFile, its pid written to pidPath. */
function launchInBackground(pidPath: string, logFile: string, args: readonly string[], name: string, wrapper: readonly string[] = []): number {
  mkdirSync(dirname(pidPath), { recursive: true });
  const log = openSync(logFile, 'a');
  try {
    const command = [...wrapper, process.execPath, ...args];
    const child = spawn(command[0], command.slice(1), { detached: true, stdio: ['ignore', log, log] });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${name}`);
    writeFileSync(pidPath, `${child.pid}\n`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/** Stop server id's daemon: SIGTERM (clean shutdown), or SIGKILL (a crash). Waits until it is gone. */
export function stopDaemon(paths: LocalClusterPaths, id: number, signal: 'SIGTERM' | 'SIGKILL', timeoutMs = 10_000): Promise<boolean> {
  return stopProcess(pidFile(paths, id), `server ${id}`, signal, timeoutMs);
}

/** Stop the process of a pid file and remove the file; false if it was not running. SIGTERM turns into SIGKILL after timeoutMs. */
async function stopProcess(file: string, name: string, signal: 'SIGTERM' | 'SIGKILL', timeoutMs: number): Promise<boolean> {
  const pid = pidIn(file);
  if (pid === undefined) return false;
  process.kill(pid, signal);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!processAlive(pid)) {
      rmSync(file, { force: true });
      return true;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  if (signal === 'SIGTERM') return stopProcess(file, name, 'SIGKILL', timeoutMs);
  throw new Error(`${name} (pid ${pid}) did not stop`);
}

/** The web console's port when tools/cluster start runs it (tools/console --port chooses another). */
export const defaultConsolePort = 7300;

const consoleMain = resolve(dirname(fileURLToPath(import.meta.url)), '../console/main.js');

export function consolePidFile(paths: LocalClusterPaths): string {
  return join(paths.dataRoot, 'console.pid');
}

export function consoleLogFile(paths: LocalClusterPaths): string {
  return join(paths.dataRoot, 'console.log');
}

/** The pid of the cluster's background console if it runs. */
export function consolePid(paths: LocalClusterPaths): number | undefined {
  return pidIn(consolePidFile(paths));
}

/** Start the web console in the background (its output goes to console.log); returns its pid. */
export function launchConsole(paths: LocalClusterPaths, port: number): number {
  return launchInBackground(consolePidFile(paths), consoleLogFile(paths), [...nodeArgs(), consoleMain, '--port', String(port), '--config', paths.configFile, '--data-root', paths.dataRoot], 'the console');
}

export function stopConsole(paths: LocalClusterPaths): Promise<boolean> {
  return stopProcess(consolePidFile(paths), 'the console', 'SIGTERM', 5000);
}

/**
 * Open a connection to server id's control endpoint, presenting the token of
 * the cluster key; undefined when the server is not running.
 */
export async function connectControl(paths: LocalClusterPaths, id: number, timeoutMs = 2000): Promise<ChorusConnection<ControlMethods> | undefined> {
  const file = join(serverDir(paths, id), controlFileName);
  if (!existsSync(file)) return undefined;
  let info: ControlInfo;
  try {
    info = JSON.parse(readFileSync(file, 'utf8')) as ControlInfo;
  } catch {
    return undefined;
  }
  if (!processAlive(info.pid)) return undefined;
  const keyFile = clusterKeyFile(paths);
  const headers = { [controlTokenHeader]: controlToken(loadClusterKey(keyFile)) };
  try {
    return await ChorusConnection.connect<ControlMethods>(`${info.host ?? '127.0.0.1'}:${info.port}`, timeoutMs, headers);
  } catch (err) {
    if (err instanceof ErrorAnswer && err.code === 401) {
      throw new ChorusError('KEY_INVALID', `server ${id} does not accept the cluster key in ${keyFile} (${err.message}); was the key replaced while it ran?`);
    }
    return undefined;
  }
}

/** Call a method on server id's control endpoint; undefined when the server is not running. */
export async function controlCall<M extends keyof ControlMethods>(
  paths: LocalClusterPaths,
  id: number,
  method: M,
  params?: ControlMethods[M]['params'],
): Promise<ControlMethods[M]['result'] | undefined> {
  const connection = await connectControl(paths, id);
  if (!connection) return undefined;
  try {
    return await connection.call(method, params ?? {});
  } finally {
    connection.close();
  }
}
