/**
 * The namespaced cluster (tools/cluster start --netns): five daemons in five
 * network namespaces, each on its own address; a partition and loss made
 * with nftables inside the namespaces, a kill and a relaunch; and nothing of
 * ours left after stop. Needs root (CI runs as root); otherwise skipped,
 * saying why.
 */
import { expect } from 'chai';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ChorusConnection } from '../src/client/connection.js';
import { loadClusterConfig } from '../src/config/clusterConfig.js';
import { createNamespaces, existingResources, netnsPlan, netnsUnavailable, removeNamespaces, saveNetnsPlan } from '../src/tools/netns.js';
import { processAlive } from '../src/storage/fileSystem.js';
import { clientMain, ScriptedClient, waitUntil } from './support/processCluster.js';
import { LocalCluster, type ClusterServerStatus } from '../src/tools/localCluster.js';
import type { ClusterPicture } from '../src/console/api.js';
import { ConsoleServer } from '../src/console/consoleServer.js';
import WebSocket from 'ws';

const execFileAsync = promisify(execFile);
const clusterTool = join(clientMain, '../../tools/cluster.js');

/** The first cluster picture the console pushes to a page of its own origin. */
function firstPicture(port: number): Promise<ClusterPicture> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/api`, { headers: { origin: `http://127.0.0.1:${port}` } });
    socket.on('error', reject);
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString()) as { method?: string; params?: unknown };
      if (message.method !== 'picture') return;
      socket.close();
      resolve(message.params as ClusterPicture);
    });
  });
}

interface Row {
  id: number;
  up: boolean;
  pid: number | null;
  status: ClusterServerStatus | null;
}

describe('namespaced cluster (network namespaces, nftables)', function () {
  this.timeout(120_000);
  let root: string;
  const clients: ScriptedClient[] = [];
  const env = { ...process.env, CHORUS_CONFIG: '' };

  const tool = async (...args: string[]): Promise<string> => {
    try {
      return (await execFileAsync(process.execPath, [clusterTool, ...args, '--data-root', root], { env })).stdout;
    } catch (err) {
      const e = err as Error & { stdout?: string; stderr?: string };
      throw new Error(`tools/cluster ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`, { cause: err });
    }
  };
  const rows = async (): Promise<Row[]> => JSON.parse(await tool('status', '--json')) as Row[];
  const oneDigest = async (): Promise<boolean> => {
    const all = await rows();
    return all.every((r) => r.status && r.status.digest === all[0].status?.digest && r.status.unstable === 0 && r.status.view.length === 5);
  };
  const client = (id: number): ScriptedClient => {
    const child = spawn(process.execPath, [clientMain, '--config', join(root, 'clusterconfig'), '--server', String(id)], { stdio: ['pipe', 'pipe', 'pipe'] });
    const c = new ScriptedClient(child);
    clients.push(c);
    return c;
  };
  const lobbyTotal = async (id: number): Promise<number> => {
    const server = loadClusterConfig(join(root, 'clusterconfig')).servers[id - 1];
    const connection = await ChorusConnection.connect(`${server.host}:${server.clientPort}`);
    try {
      return (await connection.call('history', { group: 'lobby', count: 1 })).total;
    } finally {
      connection.close();
    }
  };

  before(function () {
    const why = netnsUnavailable();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    root = mkdtempSync(join(tmpdir(), 'chorus-netns-'));
  });

  after(async () => {
    for (const c of clients) c.kill();
    if (!root) return;
    // Whatever happened: every daemon by its pid file, then every namespace and link of ours.
    for (let id = 1; id <= 5; id++) {
      const file = join(root, `server${id}.pid`);
      const pid = existsSync(file) ? Number(readFileSync(file, 'utf8')) : 0;
      if (pid > 0 && processAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    removeNamespaces(netnsPlan(root, 5).prefix);
    rmSync(root, { recursive: true, force: true });
  });

  it('runs each daemon in its own namespace, bound to its own address', async () => {
    expect(await tool('start', '--netns', '--no-console')).to.match(/The cluster is up \(5 servers\)/);
    const plan = netnsPlan(root, 5);
    for (const s of plan.servers) {
      const udp = execFileSync('ip', ['netns', 'exec', s.namespace, 'ss', '-Hlun'], { encoding: 'utf8' });
      const tcp = execFileSync('ip', ['netns', 'exec', s.namespace, 'ss', '-Hltn'], { encoding: 'utf8' });
      expect(udp).to.contain(`${s.address}:7101`);
      expect(tcp).to.contain(`${s.address}:7201`);
    }
    expect(new Set(loadClusterConfig(join(root, 'clusterconfig')).servers.map((s) => s.host)).size).to.equal(5);
    await waitUntil(oneDigest, 15_000, 'all five in one view with one digest');
  });

  it('partition {1,2} | {3,4,5} with nftables: both sides write, status shows the rules; heal: one digest within 5 s', async () => {
    await tool('partition', '1,2', '3,4,5');
    const status = await tool('status');
    expect(status).to.contain('drop comment "partition: cut from server 3"');
    expect(status).to.match(/server 4 in namespace \S+ at \S+: cut off from \{1,2\}, 4 rules:/);
    // The console draws the kernel's cut, not the daemons' (which have none).
    const cluster = new LocalCluster(loadClusterConfig(join(root, 'clusterconfig')), { dataRoot: root, configFile: join(root, 'clusterconfig') });
    const consoleServer = await ConsoleServer.start(cluster, { port: 0 });
    try {
      const picture = await firstPicture(consoleServer.port);
      expect(picture.faultsMadeBy).to.equal('nftables');
      expect(picture.sides).to.deep.equal([[1, 2], [3, 4, 5]]);
    } finally {
      await consoleServer.close();
    }
    const left = client(1);
    const right = client(4);
    await left.run('u ann', /user: ann/);
    await left.run('j lobby', /--- lobby/);
    await right.run('u dan', /user: dan/);
    await right.run('j lobby', /--- lobby/);
    await waitUntil(async () => (await rows()).every((r) => r.status?.view.length === (r.id <= 2 ? 2 : 3)), 10_000, 'views {1,2} and {3,4,5}');
    left.send('a left side');
    right.send('a right side');
    await left.waitFor(/ann: left side/);
    await right.waitFor(/dan: right side/);
    expect(left.lines.join('\n')).not.to.contain('dan: right side');
    await tool('heal');
    expect(await tool('status')).not.to.contain(' drop ');
    await waitUntil(oneDigest, 5000, 'one digest within 5 s of the heal');
    await left.waitFor(/dan: right side/);
  });

  it('30% kernel-level loss between servers 1 and 2 with chat traffic: no message lost', async () => {
    await tool('loss', '1', '2', '30');
    const before = await lobbyTotal(2);
    const writer = client(1);
    await writer.run('u lossy', /user: lossy/);
    await writer.run('j lobby', /--- lobby/);
    for (let i = 0; i < 100; i++) writer.send(`a lossy ${i}`);
    await writer.waitFor(/lossy: lossy 99/, 0, 30_000);
    await waitUntil(oneDigest, 30_000, 'one digest with the lossy link');
    for (let id = 1; id <= 5; id++) expect(await lobbyTotal(id)).to.equal(before + 100);
    // The kernel dropped datagrams, not the daemons.
    const rules = (await tool('status')).split('\n').filter((l) => l.includes('loss 30% to server'));
    expect(rules).to.have.length(2);
    expect(rules.some((l) => /packets [1-9]/.test(l))).to.equal(true);
    for (let id = 1; id <= 5; id++) expect(existsSync(join(root, `server${id}`, 'faults.json')), `server ${id} got faults of its own`).to.equal(false);
    await tool('heal');
  });

  it('kill and relaunch one daemon: it catches up', async () => {
    await tool('kill', '3');
    const writer = client(2);
    await writer.run('u late', /user: late/);
    await writer.run('j lobby', /--- lobby/);
    writer.send('a while 3 is down');
    await writer.waitFor(/late: while 3 is down/);
    expect(await tool('relaunch', '3')).to.match(/Relaunched server 3/);
    await waitUntil(oneDigest, 15_000, 'server 3 caught up');
  });

  it('stop leaves no namespace, link or rule of ours; nor does a start that crashed halfway', async () => {
    const prefix = netnsPlan(root, 5).prefix;
    expect(await tool('stop')).to.match(/Stopped 5 daemons\.[^]*Removed the network namespaces/);
    expect(existingResources(prefix)).to.deep.equal({ namespaces: [], links: [] });
    expect(execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' })).not.to.contain(prefix);
    // As if a start had created the namespaces and crashed before launching a daemon.
    const plan = netnsPlan(root, 5);
    saveNetnsPlan(root, plan);
    createNamespaces(plan);
    expect(existingResources(prefix).namespaces).to.have.length(5);
    expect(await tool('stop')).to.match(/Removed the network namespaces/);
    expect(existingResources(prefix)).to.deep.equal({ namespaces: [], links: [] });
  });
});
