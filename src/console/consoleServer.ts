/**
 * The web console's server: serves the page (built from web/ into
 * dist/web), polls every daemon's control endpoint, pushes the cluster
 * picture and the timeline to the page, carries out the page's fault
 * operations with the same code as tools/cluster, and relays the chat pane
 * to a daemon's client port. It holds the cluster key; the page never sees
 * it. Loopback only; a request naming another host, or a WebSocket opened by
 * a page of another origin, is refused (403).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket, { WebSocketServer, type AddressInfo } from 'ws';
import { z } from 'zod';
import { ChorusError } from '../errors.js';
import { RpcErrors } from '../rpc/protocol.js';
import { MethodTable, RpcError } from '../rpc/jsonRpc.js';
import { LocalCluster } from '../tools/localCluster.js';
import { apiPath, chatCloseCodes, chatPathPrefix, type ClusterPicture, type ConsoleMethod, type ConsoleMethods } from './api.js';
import { ControlLinks } from './controlLinks.js';
import { clusterPicture } from './picture.js';
import { ConsoleTimeline } from './timeline.js';

/** Where the built page is: dist/web, next to dist/src. */
export const defaultWebRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../web');

export interface ConsoleOptions {
  /** 0: a port the kernel picks (tests). */
  readonly port: number;
  readonly webRoot?: string;
  /** How often every daemon is asked for its status; the page is at most this much behind. */
  readonly pollIntervalMs?: number;
}

const contentTypes: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.png': 'image/png',
};

const serverId = z.number().int().positive();
const paramSchemas: { [M in ConsoleMethod]: z.ZodType<ConsoleMethods[M]['params']> } = {
  partition: z.object({ groups: z.array(z.array(serverId).min(1)).min(1) }),
  loss: z.object({ from: serverId, to: serverId, percent: z.number().min(0).max(100), oneway: z.boolean() }),
  kill: z.object({ id: serverId }),
  relaunch: z.object({ id: serverId }),
  heal: z.object({}).strict() as z.ZodType<Record<string, never>>,
};

export class ConsoleServer {
  private readonly timeline = new ConsoleTimeline();
  private readonly links: ControlLinks;
  private readonly pages = new Set<WebSocket>();
  private picture: ClusterPicture | undefined;
  /** The timeline's version the pages last got. */
  private sentTimelineVersion = -1;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private readonly rpc = new MethodTable<undefined>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 });
  private closed = false;

  private constructor(
    private readonly cluster: LocalCluster,
    private readonly http: Server,
    private readonly webRoot: string,
    private readonly pollIntervalMs: number,
  ) {
    this.links = new ControlLinks(cluster.paths);
    this.addMethods();
  }

  static async start(cluster: LocalCluster, options: ConsoleOptions): Promise<ConsoleServer> {
    const http = createServer();
    const server = new ConsoleServer(cluster, http, options.webRoot ?? defaultWebRoot, options.pollIntervalMs ?? 250);
    http.on('request', (req, res) => server.serveFile(req, res));
    http.on('upgrade', (req, socket, head) => server.upgrade(req, socket, head));
    await new Promise<void>((resolvePromise, reject) => {
      http.once('error', (err: NodeJS.ErrnoException) =>
        reject(err.code === 'EADDRINUSE' ? new ChorusError('INVALID_ARGUMENT', `the console port 127.0.0.1:${options.port} is already in use (choose another with --port)`) : err),
      );
      http.listen(options.port, '127.0.0.1', () => resolvePromise());
    });
    await server.poll();
    server.schedulePoll();
    return server;
  }

  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/`;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.pollTimer);
    await this.polling;
    for (const socket of this.wss.clients) socket.terminate();
    this.links.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolvePromise) => this.http.close(() => resolvePromise()));
  }

  /** The origins a page of this console has: what its WebSockets name, and the hosts its requests name. */
  private ownHosts(): string[] {
    return [`127.0.0.1:${this.port}`, `localhost:${this.port}`];
  }

  /** A request that names another host (DNS rebinding) or comes from another page's script is refused. */
  private foreign(req: IncomingMessage, needsOrigin: boolean): string | undefined {
    if (!this.ownHosts().includes(String(req.headers.host ?? ''))) return 'this console answers only requests for its own address';
    const origin = req.headers.origin;
    if (origin === undefined) return needsOrigin ? 'only the console page may open this connection' : undefined;
    return this.ownHosts().some((h) => origin === `http://${h}`) ? undefined : `pages from ${origin} may not use this console`;
  }

  private serveFile(req: IncomingMessage, res: ServerResponse): void {
    const refused = this.foreign(req, false);
    if (refused) return plain(res, 403, refused);
    if (req.method !== 'GET' && req.method !== 'HEAD') return plain(res, 405, 'only GET');
    const path = new URL(req.url ?? '/', 'http://console').pathname;
    const name = path === '/' ? 'index.html' : path.slice(1);
    const file = join(this.webRoot, name);
    if (!/^[\w.-]+$/.test(name) || !existsSync(file)) return plain(res, 404, `no such file: ${path}`);
    res.writeHead(200, {
      'content-type': contentTypes[extname(name)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'content-security-policy': "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    });
    res.end(req.method === 'HEAD' ? undefined : readFileSync(file));
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refused = this.foreign(req, true);
    const path = new URL(req.url ?? '/', 'http://console').pathname;
    if (refused) return rejectUpgrade(socket, 403, refused);
    if (path === apiPath) return this.wss.handleUpgrade(req, socket, head, (page) => this.openPage(page));
    if (path.startsWith(chatPathPrefix)) {
      const id = Number(path.slice(chatPathPrefix.length));
      const server = this.cluster.config.servers.find((s) => s.id === id);
      if (!server) return rejectUpgrade(socket, 404, `there is no server ${path.slice(chatPathPrefix.length)}`);
      return this.wss.handleUpgrade(req, socket, head, (page) => relayChat(page, id, `${server.host}:${server.clientPort}`));
    }
    rejectUpgrade(socket, 404, `no such endpoint: ${path}`);
  }

  private openPage(page: WebSocket): void {
    this.pages.add(page);
    page.on('close', () => this.pages.delete(page));
    page.on('error', () => page.terminate());
    page.on('message', (data) => {
      this.rpc.receiveText(data.toString(), undefined, (answer) => {
        if (answer && page.readyState === WebSocket.OPEN) page.send(JSON.stringify(answer));
      });
    });
    if (this.picture) notify(page, 'picture', this.picture);
    notify(page, 'timeline', this.timeline.current);
  }

  private addMethods(): void {
    const add = <M extends ConsoleMethod>(method: M, run: (params: ConsoleMethods[M]['params']) => Promise<string>) => {
      this.rpc.add(method, async (raw: unknown) => {
        const parsed = paramSchemas[method].safeParse(raw ?? {});
        if (!parsed.success) throw new RpcError(RpcErrors.invalidParams, `invalid parameters for ${method}: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'params'}: ${i.message}`).join('; ')}`);
        try {
          const text = await run(parsed.data);
          this.timeline.record(Date.now(), 'fault', text);
          await this.poll();
          return { text };
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          this.timeline.record(Date.now(), 'error', `${method} failed: ${message}`);
          throw new RpcError(RpcErrors.invalidParams, message);
        }
      });
    };
    add('partition', async ({ groups }) => {
      const result = await this.cluster.partition(groups);
      const down = result.filter((r) => r.down).map((r) => r.id);
      return `partition ${groups.map((g) => `{${g.join(',')}}`).join(' | ')}${down.length > 0 ? ` (servers ${down.join(',')} are down: it applies when they are relaunched)` : ''}`;
    });
    add('loss', async ({ from, to, percent, oneway }) => {
      await this.cluster.loss(from, to, percent / 100, oneway);
      return `loss ${percent}% ${oneway ? `${from} -> ${to}` : `between ${from} and ${to}`}`;
    });
    add('kill', async ({ id }) => ((await this.cluster.kill(id)) ? `killed server ${id} (SIGKILL)` : `server ${id} was not running`));
    add('relaunch', async ({ id }) => ((await this.cluster.relaunch(id)) ? `relaunched server ${id} from its log files` : `server ${id} is already running`));
    add('heal', async () => {
      await this.cluster.heal();
      this.timeline.healed(Date.now());
      return 'healed: no partitions, no injected loss';
    });
  }

  private schedulePoll(): void {
    if (this.closed) return;
    this.pollTimer = setTimeout(() => {
      void this.poll().finally(() => this.schedulePoll());
    }, this.pollIntervalMs);
  }

  /** Read every daemon's status, push the new picture (and the timeline if it changed). One poll at a time. */
  private poll(): Promise<void> {
    this.polling ??= this.readCluster().finally(() => (this.polling = undefined));
    return this.polling;
  }

  private async readCluster(): Promise<void> {
    const plan = this.cluster.netns;
    const statuses = LocalCluster.withKernelFaults(plan, await Promise.all(this.cluster.ids.map((id) => this.links.status(id))));
    if (this.closed) return;
    const picture = clusterPicture(this.cluster.config.servers, statuses, Date.now(), plan ? 'nftables' : 'daemons');
    this.picture = picture;
    this.timeline.observe(picture);
    const timelineChanged = this.timeline.version !== this.sentTimelineVersion;
    this.sentTimelineVersion = this.timeline.version;
    for (const page of this.pages) {
      notify(page, 'picture', picture);
      if (timelineChanged) notify(page, 'timeline', this.timeline.current);
    }
  }
}

function notify(page: WebSocket, method: string, params: unknown): void {
  if (page.readyState === WebSocket.OPEN) page.send(JSON.stringify({ jsonrpc: '2.0', method, params }));
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${text}\n`);
}

function rejectUpgrade(socket: Duplex, status: number, why: string): void {
  socket.end(`HTTP/1.1 ${status} ${status === 403 ? 'Forbidden' : 'Not Found'}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${why}\n`);
}

/**
 * The chat pane's connection, relayed frame by frame to server id's client
 * port (which sees a program, not a page: the console is the trusted party).
 * When the server closes or dies, the page is told with a code of its own.
 */
function relayChat(page: WebSocket, id: number, address: string): void {
  const server = new WebSocket(`ws://${address}`, { handshakeTimeout: 2000 });
  const early: string[] = [];
  let opened = false;
  page.on('message', (data) => {
    if (server.readyState === WebSocket.OPEN) server.send(data.toString());
    else early.push(data.toString());
  });
  page.on('close', () => server.close());
  page.on('error', () => page.terminate());
  server.on('open', () => {
    opened = true;
    for (const frame of early.splice(0)) server.send(frame);
  });
  server.on('message', (data) => {
    if (page.readyState === WebSocket.OPEN) page.send(data.toString());
  });
  server.on('error', () => undefined);
  server.on('close', (code, reason) => {
    if (page.readyState !== WebSocket.OPEN) return;
    if (!opened) return page.close(chatCloseCodes.serverUnreachable, `server ${id} is not answering at ${address}`);
    const why = reason.length > 0 ? `: ${reason.toString()}` : code === 1006 ? ': the connection broke (crashed or killed?)' : '';
    page.close(chatCloseCodes.serverGone, `server ${id} closed the connection${why}`.slice(0, 120));
  });
}
