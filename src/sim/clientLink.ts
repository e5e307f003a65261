/**
 * A client's connection to a simulated server: what a WebSocket is to the
 * daemon, in memory and on simulated time. Frames go each way in order,
 * each after a small random delay; the server's side is its RPC endpoint
 * (rpc/endpoint.ts), the client's side a channel of the client session
 * library (client/session.ts). A crash ends the link: the client hears of
 * it one delay later, with every call still unanswered lost.
 */
import { ErrorAnswer, PendingCalls } from '../client/calls.js';
import { routeFrame } from '../client/frames.js';
import { SessionError, type ChannelHandlers, type RpcChannel } from '../client/session.js';
import type { ClientSocket, RpcConnection, RpcEndpoint } from '../rpc/endpoint.js';
import type { Random } from './random.js';
import type { SimTimers } from './simTimers.js';

/** A frame's delay on a link: this plus up to as much again. */
const linkDelayMs = 0.2;

export class ClientLink {
  /** Closed by either side: no more frames are taken. */
  private closed = false;
  /** The client heard that the link closed. */
  private clientClosed = false;
  private toServerAt = 0;
  private toClientAt = 0;
  private readonly connection: RpcConnection | undefined;
  private readonly calls = new PendingCalls();
  readonly channel: RpcChannel;

  constructor(
    private readonly endpoint: RpcEndpoint,
    private readonly timers: SimTimers,
    private readonly random: Random,
    private readonly now: () => number,
    private readonly handlers: ChannelHandlers,
    /** Called once the link is closed, by either side. */
    private readonly onClosed: (link: ClientLink) => void,
  ) {
    this.connection = endpoint.connect(this.serverSocket());
    const isOpen = () => this.open;
    this.channel = {
      get connected() {
        return isOpen();
      },
      call: (method, params) => this.call(method, params),
      close: () => this.closeByClient(),
    };
  }

  get open(): boolean {
    return !this.closed && !this.clientClosed;
  }

  /** The server crashed: the client hears of it after a delay; frames still in flight to it are lost. */
  serverGone(): void {
    if (this.closed) return;
    this.closed = true;
    this.toClient(() => this.clientHearsClose('the server crashed'));
  }

  private async call(method: string, params: object): Promise<unknown> {
    if (!this.open) throw new SessionError(0, 'not connected');
    const { text, result } = this.calls.request(method, params);
    this.toServer(text);
    try {
      return await result;
    } catch (err) {
      if (err instanceof ErrorAnswer) throw new SessionError(err.code, err.message);
      throw new SessionError(0, (err as Error).message);
    }
  }

  private serverSocket(): ClientSocket {
    return {
      open: true,
      send: (text) => this.toClient(() => this.clientReceives(text)),
      close: (_code, reason) => {
        this.closed = true;
        this.toClient(() => this.clientHearsClose(reason));
      },
    };
  }

  private delay(): number {
    return linkDelayMs * (1 + this.random.next());
  }

  private toServer(text: string): void {
    if (!this.open) return;
    this.toServerAt = Math.max(this.toServerAt, this.now() + this.delay());
    this.timers.at(this.toServerAt, () => {
      if (!this.closed && this.connection) this.endpoint.receive(this.connection, text);
    });
  }

  private toClient(deliver: () => void): void {
    this.toClientAt = Math.max(this.toClientAt, this.now() + this.delay());
    this.timers.at(this.toClientAt, deliver);
  }

  private clientReceives(text: string): void {
    if (this.clientClosed) return;
    routeFrame(text, {
      push: (method, params) => this.handlers.push(method, params),
      notice: () => undefined,
      answer: (answer) => this.calls.receive(answer),
    });
  }

  private clientHearsClose(reason: string): void {
    if (this.clientClosed) return;
    this.clientClosed = true;
    this.calls.rejectAll(`the connection to the server was lost: ${reason}`);
    this.handlers.closed(reason);
    this.onClosed(this);
  }

  /** The client closed the link (it moves to another server): the server hears of it after a delay, and its session's user leaves. */
  private closeByClient(): void {
    if (this.clientClosed) return;
    this.clientClosed = true;
    this.calls.rejectAll('the connection was closed');
    this.onClosed(this);
    if (this.closed) return;
    this.closed = true;
    this.toServerAt = Math.max(this.toServerAt, this.now() + this.delay());
    this.timers.at(this.toServerAt, () => {
      if (this.connection) this.endpoint.disconnected(this.connection);
    });
  }
}
