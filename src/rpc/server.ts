/**
 * The RPC server: JSON-RPC 2.0 over WebSocket on the daemon's client port.
 * Each connection is a session; closing it makes its user leave the group.
 * Subscribed sessions (those in a group) get a `group` notification whenever
 * what they would see changes.
 */
import { randomBytes } from 'node:crypto';
import { JSONRPCServer } from 'json-rpc-2.0';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ServerAddress } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import type { ChatService, Session } from './chatService.js';
import { recentMessages } from './protocol.js';

/** Pushes to one session are coalesced: at most one per this period. */
const pushIntervalMs = 10;

interface Connection {
  readonly socket: WebSocket;
  readonly session: Session;
  lastPushed?: string;
}

export class RpcServer {
  private readonly rpc = new JSONRPCServer<Connection>();
  private readonly connections = new Set<Connection>();
  /** Distinguishes this daemon run's sessions from those of earlier runs. */
  private readonly bootId = randomBytes(4).toString('hex');
  private nextSession = 1;
  private pushTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;
  /** Set by crash(): a crashed server's sessions end without a word; its restart makes them leave. */
  private crashed = false;

  private constructor(
    private readonly wss: WebSocketServer,
    private readonly service: ChatService,
  ) {
    this.addMethods();
    wss.on('connection', (socket) => this.onConnection(socket));
    this.unsubscribe = service.app.onChange(() => this.schedulePush());
  }

  static async start(address: ServerAddress, service: ChatService): Promise<RpcServer> {
    const wss = new WebSocketServer({ host: address.host, port: address.clientPort });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', () => resolve());
      wss.once('error', (err: NodeJS.ErrnoException) => {
        const why = err.code === 'EADDRINUSE' ? 'is already in use' : `cannot be opened: ${err.message}`;
        reject(new ChorusError(err.code === 'EADDRINUSE' ? 'PORT_IN_USE' : 'NETWORK_FAILED', `client port ${address.host}:${address.clientPort} ${why}`));
      });
    });
    return new RpcServer(wss, service);
  }

  get sessionCount(): number {
    return this.connections.size;
  }

  private addMethods(): void {
    const s = this.service;
    const param = (params: unknown, key: string): unknown => (typeof params === 'object' && params !== null ? (params as Record<string, unknown>)[key] : undefined);
    this.rpc.addMethod('user', (params, c) => s.setUser(c.session, param(params, 'name')));
    this.rpc.addMethod('join', async (params, c) => {
      const view = await s.join(c.session, param(params, 'group'));
      c.lastPushed = JSON.stringify(view);
      return view;
    });
    this.rpc.addMethod('leave', (_params, c) => s.leave(c.session));
    this.rpc.addMethod('append', (params, c) => s.append(c.session, param(params, 'text')));
    this.rpc.addMethod('like', (params, c) => s.like(c.session, param(params, 'id'), true));
    this.rpc.addMethod('unlike', (params, c) => s.like(c.session, param(params, 'id'), false));
    this.rpc.addMethod('history', (_params, c) => s.history(c.session));
    this.rpc.addMethod('view', () => s.view());
    this.rpc.addMethod('status', () => s.daemon.status());
  }

  private onConnection(socket: WebSocket): void {
    const connection: Connection = { socket, session: { id: `${this.service.daemon.id}.${this.bootId}.${this.nextSession++}` } };
    this.connections.add(connection);
    socket.on('message', (data, isBinary) => {
      if (isBinary) {
        socket.send(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'expected a text frame with JSON' } }));
        return;
      }
      void this.rpc.receiveJSON(data.toString(), connection).then((response) => {
        if (response && socket.readyState === socket.OPEN) socket.send(JSON.stringify(response));
      });
    });
    socket.on('close', () => {
      this.connections.delete(connection);
      if (!this.crashed) void this.service.closeSession(connection.session);
    });
    socket.on('error', () => socket.terminate());
  }

  private schedulePush(): void {
    if (this.pushTimer) return;
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined;
      this.push();
    }, pushIntervalMs);
  }

  private push(): void {
    for (const c of this.connections) {
      const group = c.session.group;
      if (group === undefined || c.socket.readyState !== c.socket.OPEN) continue;
      const view = JSON.stringify(this.service.groupView(group, recentMessages));
      if (view === c.lastPushed) continue;
      c.lastPushed = view;
      c.socket.send(`{"jsonrpc":"2.0","method":"group","params":${view}}`);
    }
  }

  /** Drop every connection as a crash would: the sessions' users do not leave now. */
  async crash(): Promise<void> {
    this.crashed = true;
    await this.close();
  }

  async close(): Promise<void> {
    this.unsubscribe();
    clearTimeout(this.pushTimer);
    for (const c of this.connections) c.socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
