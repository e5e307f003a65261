/**
 * The RPC server: JSON-RPC 2.0 over WebSocket on the daemon's client port.
 * Each connection is a session of the endpoint (endpoint.ts: the methods,
 * the limits, the pushes); closing it makes its user leave the group.
 * Subscribed sessions (those in a group) get a `group` notification whenever
 * what they would see changes.
 */
import { randomBytes } from 'node:crypto';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ServerAddress } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import type { ChatService } from './chatService.js';
import { RpcEndpoint, type ClientSocket } from './endpoint.js';
import { eventLoopTimers, type RpcTimers } from './timers.js';
import { closeGoingAway, defaultRpcLimits, type RpcLimits } from './protocol.js';

/** Frames this many times the limit are not read at all: the WebSocket closes with 1009 (message too big). */
const hardFrameFactor = 16;

/**
 * After a clean stop has answered every accepted request it goes on
 * answering 4008 this long before it closes: a request a client sent before
 * it saw its first 4008 still gets an answer (none is possible once the
 * close frame is out).
 */
const closeGraceMs = 100;

function clientSocket(socket: WebSocket): ClientSocket {
  return {
    get open() {
      return socket.readyState === socket.OPEN;
    },
    send: (text) => socket.send(text),
    close: (code, reason) => socket.close(code, reason),
  };
}

export class RpcServer {
  readonly endpoint: RpcEndpoint;
  private readonly sockets = new Set<WebSocket>();
  private crashed = false;

  private constructor(
    private readonly wss: WebSocketServer,
    service: ChatService,
    limits: RpcLimits,
    private readonly timers: RpcTimers,
  ) {
    // The boot id tells this daemon run's sessions from those of earlier runs.
    this.endpoint = new RpcEndpoint(service, limits, timers, `${service.port.server}.${randomBytes(4).toString('hex')}`);
    wss.on('connection', (socket) => this.onConnection(socket));
  }

  static async start(address: ServerAddress, service: ChatService, limits: RpcLimits = defaultRpcLimits, timers: RpcTimers = eventLoopTimers()): Promise<RpcServer> {
    const allowed = new Set(limits.allowedOrigins ?? []);
    const wss = new WebSocketServer({
      host: address.host,
      port: address.clientPort,
      maxPayload: limits.maxFrameBytes * hardFrameFactor,
      verifyClient: ({ origin }: { origin?: string }, done: (ok: boolean, code?: number, message?: string) => void) =>
        origin === undefined || allowed.has(origin) ? done(true) : done(false, 403, `origin ${origin} may not connect (chorusd --allow-origin)`),
    });
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', () => resolve());
      wss.once('error', (err: NodeJS.ErrnoException) => {
        const why = err.code === 'EADDRINUSE' ? 'is already in use' : `cannot be opened: ${err.message}`;
        reject(new ChorusError(err.code === 'EADDRINUSE' ? 'PORT_IN_USE' : 'NETWORK_FAILED', `client port ${address.host}:${address.clientPort} ${why}`));
      });
    });
    return new RpcServer(wss, service, limits, timers);
  }

  get sessionCount(): number {
    return this.endpoint.sessionCount;
  }

  get refusedRequests(): number {
    return this.endpoint.refusedRequests;
  }

  get methodNames(): readonly string[] {
    return this.endpoint.methodNames;
  }

  private onConnection(socket: WebSocket): void {
    socket.on('error', () => socket.terminate());
    const connection = this.endpoint.connect(clientSocket(socket));
    if (!connection) return;
    this.sockets.add(socket);
    socket.on('message', (data, isBinary) => this.endpoint.receive(connection, (data as Buffer).toString('utf8'), isBinary));
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.endpoint.disconnected(connection);
    });
  }

  /** Drop every connection as a crash would: the sessions' users do not leave now. */
  async crash(): Promise<void> {
    this.crashed = true;
    await this.close();
  }

  /**
   * A clean stop: requests that still come are answered 4008 (shutting
   * down), every request accepted before gets its answer (an append once it
   * is durable here, as always), then each connection closes with 1001
   * "going away". A crash drops the connections at once.
   */
  async close(drainTimeoutMs = 10_000): Promise<void> {
    this.endpoint.stop(this.crashed);
    if (!this.crashed) {
      await this.answerPending(drainTimeoutMs);
      await new Promise((r) => setTimeout(r, closeGraceMs));
    }
    for (const socket of this.sockets) {
      if (this.crashed) socket.terminate();
      else socket.close(closeGoingAway, 'the server is shutting down');
    }
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private async answerPending(timeoutMs: number): Promise<void> {
    const deadline = this.timers.now() + timeoutMs;
    while (this.endpoint.pendingRequests > 0 && this.timers.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }
}
