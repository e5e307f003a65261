/**
 * The console server's boundary, without a browser: it serves the page on
 * loopback, refuses requests for other hosts and WebSockets opened by pages
 * of other origins, never hands out the cluster key, and answers bad fault
 * requests with clear errors. No daemon runs: every server shows as down.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { loadClusterConfig } from '../src/config/clusterConfig.js';
import { ensureClusterKey } from '../src/config/clusterKey.js';
import type { ClusterPicture } from '../src/console/api.js';
import { ConsoleServer } from '../src/console/consoleServer.js';
import { controlToken } from '../src/daemon/controlServer.js';
import { LocalCluster } from '../src/tools/localCluster.js';
import { freePorts } from '../src/tools/freePorts.js';
import { clusterKeyFile } from '../src/tools/clusterProcesses.js';

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Open a WebSocket; resolves with the socket, or with the HTTP status it was refused with. */
function openSocket(url: string, headers: Record<string, string>): Promise<WebSocket | number> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, { headers });
    socket.once('open', () => resolve(socket));
    socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    socket.once('error', () => resolve(0));
  });
}

describe('console server', () => {
  let root: string;
  let server: ConsoleServer;
  let key: string;
  let origin: string;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'chorus-console-'));
    const ports = await freePorts(6);
    const configFile = join(root, 'clusterconfig');
    writeFileSync(configFile, [0, 1, 2].map((i) => `127.0.0.1 ${ports[2 * i]} ${ports[2 * i + 1]}\n`).join(''));
    const paths = { dataRoot: join(root, 'data'), configFile };
    ensureClusterKey(clusterKeyFile(paths));
    key = readFileSync(clusterKeyFile(paths), 'utf8').trim();
    server = await ConsoleServer.start(new LocalCluster(loadClusterConfig(configFile), paths), { port: 0 });
    origin = `http://127.0.0.1:${server.port}`;
  });

  after(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('serves the page and its script, with neither the cluster key nor the control token in them', async () => {
    const page = await get(server.port, '/');
    expect(page.status).to.equal(200);
    expect(page.body).to.contain('console.js');
    const script = await get(server.port, '/console.js');
    expect(script.status).to.equal(200);
    const token = controlToken(readFileSync(clusterKeyFile({ dataRoot: join(root, 'data'), configFile: '' })));
    for (const body of [page.body, script.body]) {
      expect(body).not.to.contain(key);
      expect(body).not.to.contain(token);
    }
  });

  it('answers 404 for files it does not have, and never outside its folder', async () => {
    expect((await get(server.port, '/nothing.js')).status).to.equal(404);
    expect((await get(server.port, '/../package.json')).status).to.equal(404);
    expect((await get(server.port, '/%2e%2e%2fpackage.json')).status).to.equal(404);
  });

  it('refuses a request that names another host (a DNS-rebinding page)', async () => {
    const answer = await get(server.port, '/', { host: `evil.example:${server.port}` });
    expect(answer.status).to.equal(403);
    expect(answer.body).to.contain('its own address');
  });

  it('refuses WebSockets from pages of other origins, and from programs that name none', async () => {
    expect(await openSocket(`ws://127.0.0.1:${server.port}/api`, { origin: 'http://evil.example' })).to.equal(403);
    expect(await openSocket(`ws://127.0.0.1:${server.port}/api`, {})).to.equal(403);
    expect(await openSocket(`ws://127.0.0.1:${server.port}/chat/1`, { origin: 'http://evil.example' })).to.equal(403);
    expect(await openSocket(`ws://127.0.0.1:${server.port}/chat/9`, { origin })).to.equal(404);
  });

  it('pushes the picture to its own page (every server down here) and answers bad fault requests with the reason', async () => {
    const socket = await openSocket(`ws://127.0.0.1:${server.port}/api`, { origin });
    if (!(socket instanceof WebSocket)) throw new Error(`refused: ${socket}`);
    const messages: { method?: string; params?: unknown; id?: number; error?: { code: number; message: string }; result?: unknown }[] = [];
    socket.on('message', (data) => messages.push(JSON.parse(data.toString())));
    const answer = async (id: number) => {
      for (let i = 0; i < 200 && !messages.some((m) => m.id === id); i++) await new Promise((r) => setTimeout(r, 10));
      return messages.find((m) => m.id === id);
    };
    socket.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'kill', params: { id: 'x' } }));
    socket.send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'partition', params: { groups: [[1, 2], [2, 3]] } }));
    socket.send(JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'loss', params: { from: 1, to: 2, percent: 130, oneway: false } }));
    socket.send(JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'kill', params: { id: 3 } }));
    socket.send('not json');
    expect((await answer(1))?.error?.message).to.match(/invalid parameters for kill: id/);
    expect((await answer(2))?.error?.message).to.equal('server 2 is in two groups');
    expect((await answer(3))?.error?.message).to.match(/invalid parameters for loss: percent/);
    expect((await answer(4))?.result).to.deep.equal({ text: 'server 3 was not running' });
    const picture = messages.find((m) => m.method === 'picture')?.params as ClusterPicture;
    expect(picture.servers.map((s) => s.state)).to.deep.equal(['down', 'down', 'down']);
    socket.close();
  });
});
