/**
 * Storage faults on a real daemon process: its data directory becomes
 * read-only, or its disk fills up. It must refuse operations with a clear
 * error, never acknowledge one it could not persist, and after the disk is
 * fixed and it restarts, hold every operation it acknowledged.
 *
 * Root ignores directory permissions, so as root the daemon runs without the
 * capabilities that let it (setpriv); the full disk is a small tmpfs (root only).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { ChorusConnection, RpcCallError } from '../src/client/connection.js';
import { RpcErrors } from '../src/rpc/protocol.js';
import { clusterKeyFile, controlCall, serverDir } from '../src/tools/clusterProcesses.js';
import { fastDaemonArgs, ProcessCluster, waitUntil } from './support/processCluster.js';

const daemonMain = join(process.cwd(), 'dist/src/daemon/main.js');
const isRoot = process.getuid?.() === 0;
const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;

describe('storage faults on a real daemon', function () {
  this.timeout(120_000);
  let cluster: ProcessCluster | undefined;
  let daemon: ChildProcess | undefined;
  let connection: ChorusConnection | undefined;
  const cleanups: (() => void)[] = [];

  afterEach(async () => {
    connection?.close();
    if (daemon?.exitCode === null) {
      daemon.kill('SIGKILL');
      await new Promise((r) => daemon!.once('exit', r));
    }
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
    await cluster?.destroy();
    cluster = daemon = connection = undefined;
  });

  /** Start server 1 ourselves (the others through the test cluster), as root without the power to ignore permissions. */
  async function startServerOne(dataDir: string, extra: string[] = []): Promise<void> {
    const args = [daemonMain, '--id', '1', '--config', cluster!.paths.configFile, '--data-dir', dataDir, '--key-file', clusterKeyFile(cluster!.paths), ...fastDaemonArgs, ...extra];
    const [command, commandArgs] = isRoot ? ['setpriv', ['--bounding-set=-dac_override,-dac_read_search,-fowner', process.execPath, ...args]] : [process.execPath, args];
    daemon = spawn(command, commandArgs as string[], { stdio: 'ignore' });
    await waitUntil(() => cluster!.answers(1), 15_000, 'server 1 answers');
  }

  async function chatOn(id: number): Promise<ChorusConnection> {
    const s = cluster!.config.servers[id - 1];
    const c = await ChorusConnection.connect(`${s.host}:${s.clientPort}`);
    await c.call('user', { name: `reader${id}` });
    await c.call('join', { group: 'log' });
    return c;
  }

  /** Append until the server refuses; returns the texts it acknowledged and the refusal. */
  async function appendUntilRefused(c: ChorusConnection, prefix: string): Promise<{ acked: string[]; refusal: RpcCallError }> {
    const acked: string[] = [];
    const deadline = Date.now() + 30_000;
    for (let i = 0; Date.now() < deadline; i++) {
      const text = `${prefix} ${i} ${'x'.repeat(200)}`;
      try {
        await c.call('append', { text });
        acked.push(text);
      } catch (err) {
        return { acked, refusal: err as RpcCallError };
      }
    }
    throw new Error('the server never refused an append');
  }

  async function expectAllPresent(texts: string[]): Promise<void> {
    for (const id of [1, 3]) {
      const reader = await chatOn(id);
      try {
        await waitUntil(
          async () => {
            const history = await reader.call('history');
            const shown = new Set(history.messages.map((m) => m.text));
            return texts.every((t) => shown.has(t));
          },
          15_000,
          `every acknowledged message on server ${id}`,
        );
      } finally {
        reader.close();
      }
    }
  }

  async function restartServerOne(dataDir: string): Promise<void> {
    daemon!.kill('SIGKILL');
    await new Promise((r) => daemon!.once('exit', r));
    await startServerOne(dataDir);
  }

  async function breakAndRecover(dataDir: string, breakDisk: () => void, fixDisk: () => void, why: RegExp): Promise<void> {
    await startServerOne(dataDir, ['--snapshot-interval-ms', '100', '--snapshot-journal-bytes', '20000']);
    connection = await chatOn(1);
    const before: string[] = [];
    for (let i = 0; i < 20; i++) {
      const text = `before ${i}`;
      await connection.call('append', { text });
      before.push(text);
    }
    breakDisk();
    const { acked, refusal } = await appendUntilRefused(connection, 'during');
    expect(refusal.code).to.equal(RpcErrors.storageFailed);
    expect(refusal.message).to.match(/^the server cannot write its log files, so it accepts no operations until it is restarted \(/);
    expect(refusal.message).to.match(why);
    expect(refusal.message).to.match(/connect to another server$/);
    // Every later operation is refused the same way; reads still work.
    const again = await connection.call('append', { text: 'after' }).catch((e: RpcCallError) => e);
    expect((again as RpcCallError).code).to.equal(RpcErrors.storageFailed);
    expect((await connection.call('history')).group).to.equal('log');
    const status = await controlCall(cluster!.paths, 1, 'status');
    expect(status?.storageError).to.match(why);
    expect(await cluster!.tool('cluster', 'status')).to.match(/server 1 STORAGE FAILED, accepting no operations until relaunched: /);
    connection.close();

    fixDisk();
    await restartServerOne(dataDir);
    await expectAllPresent([...before, ...acked]);
  }

  it('a data directory that becomes read-only: appends refused with an error, nothing acknowledged lost', async function () {
    if (isRoot && !hasSetpriv) this.skip();
    cluster = await ProcessCluster.create(3);
    await cluster.start(2);
    await cluster.start(3);
    const dataDir = serverDir(cluster.paths, 1);
    mkdirSync(dataDir, { recursive: true });
    cleanups.push(() => chmodSync(dataDir, 0o755));
    await breakAndRecover(
      dataDir,
      () => chmodSync(dataDir, 0o555),
      () => chmodSync(dataDir, 0o755),
      /EACCES|permission denied/,
    );
  });

  it('a full disk: appends refused with an error, nothing acknowledged lost', async function () {
    if (!isRoot) this.skip();
    cluster = await ProcessCluster.create(3);
    await cluster.start(2);
    await cluster.start(3);
    // Server 1's data directory is a 2 MiB file system of its own.
    const dataDir = serverDir(cluster.paths, 1);
    mkdirSync(dataDir, { recursive: true });
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dataDir]).status !== 0) this.skip();
    cleanups.push(() => spawnSync('umount', ['-l', dataDir]));
    const filler = join(dataDir, 'filler');
    await breakAndRecover(
      dataDir,
      () => fillDisk(filler),
      () => rmSync(filler, { force: true }),
      /ENOSPC|no space left/,
    );
  });
});

/** Write until the file system is full. */
function fillDisk(file: string): void {
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(4096, 1);
  try {
    for (;;) writeFileSync(fd, block);
  } catch {
    // Full.
  } finally {
    closeSync(fd);
  }
}
