/**
 * A client's connection to one server: JSON-RPC 2.0 over WebSocket, with
 * pushed group updates. Calls are typed by a method map: the client port's
 * (rpc/protocol.ts ChatMethods) by default, the control endpoint's for tools.
 */
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import type { ChatMethods, GroupPush, MethodShape } from '../rpc/protocol.js';
import { ErrorAnswer, PendingCalls } from './calls.js';
import { routeFrame } from './frames.js';
import { SessionError, type ChannelHandlers, type RpcChannel } from './session.js';

export interface ConnectionEvents {
  group: [GroupPush];
  /** The reason the server gave, if any (a limit, a shutdown). */
  close: [reason: string | undefined];
}

/** A batch stays well under the server's frame limit (64 KiB by default). */
const maxBatchBytes = 32 * 1024;

export class ChorusConnection<Methods extends { [K in keyof Methods]: MethodShape } = ChatMethods> extends EventEmitter<ConnectionEvents> {
  private readonly calls = new PendingCalls();
  private open = true;
  /** An error the server sent outside any call (id null), e.g. "too many connections". */
  private notice: string | undefined;
  /** Requests made in this turn of the event loop: sent together, as one JSON-RPC batch, at its end. */
  private outbox: string[] = [];
  private outboxBytes = 0;

  private constructor(
    private readonly socket: WebSocket,
    readonly address: string,
  ) {
    super();
    socket.on('message', (data) => this.onMessage(data.toString()));
    socket.on('close', (code, reason) => this.onClose(reason.length > 0 ? `${reason.toString()} (${code})` : undefined));
    socket.on('error', () => undefined);
  }

  /** Connect to host:port, failing after timeoutMs; `headers` go with the upgrade request (the control token). */
  static connect<Methods extends { [K in keyof Methods]: MethodShape } = ChatMethods>(address: string, timeoutMs = 5000, headers: Record<string, string> = {}): Promise<ChorusConnection<Methods>> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(`ws://${address}`, { handshakeTimeout: timeoutMs, headers });
      const fail = (err: Error) => reject(new Error(`cannot connect to ${address}: ${err.message}`));
      socket.once('error', fail);
      // A refused upgrade (the control endpoint's 401 or 403) says why in its body.
      socket.once('unexpected-response', (_request, response) => {
        socket.off('error', fail);
        socket.on('error', () => undefined);
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk.slice(0, 500)));
        response.on('end', () => {
          socket.terminate();
          const why = body.trim() || response.statusMessage || '';
          reject(new ErrorAnswer(response.statusCode ?? 0, `${address} refused the connection: ${response.statusCode} ${why}`.trim()));
        });
      });
      socket.once('open', () => {
        socket.off('error', fail);
        resolve(new ChorusConnection<Methods>(socket, address));
      });
    });
  }

  get connected(): boolean {
    return this.open;
  }

  async call<M extends keyof Methods & string>(method: M, params: NonNullable<Methods[M]['params']> | Record<string, never> = {}): Promise<Methods[M]['result']> {
    if (!this.open || this.socket.readyState !== WebSocket.OPEN) throw new ErrorAnswer(0, 'not connected');
    const { text, result } = this.calls.request(method, params);
    this.queue(text);
    try {
      return (await result) as Methods[M]['result'];
    } catch (err) {
      if (err instanceof ErrorAnswer) throw err;
      throw new ErrorAnswer(0, (err as Error).message);
    }
  }

  /**
   * A program that makes many calls at once (a script, the benchmark) pays
   * one WebSocket frame each way for all of them, not one per call; a lone
   * call goes as a plain request.
   */
  private queue(request: string): void {
    if (this.outboxBytes + request.length > maxBatchBytes) this.flush();
    this.outbox.push(request);
    this.outboxBytes += request.length;
    if (this.outbox.length === 1) setImmediate(() => this.flush());
  }

  private flush(): void {
    if (this.outbox.length === 0) return;
    const frame = this.outbox.length === 1 ? this.outbox[0] : `[${this.outbox.join(',')}]`;
    this.outbox = [];
    this.outboxBytes = 0;
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(frame);
  }

  close(): void {
    this.flush();
    this.socket.close();
    this.onClose(undefined);
  }

  private onMessage(text: string): void {
    routeFrame(text, {
      push: (method, params) => {
        if (method === 'group') this.emit('group', params as GroupPush);
      },
      notice: (message) => (this.notice = message),
      answer: (answer) => this.calls.receive(answer),
    });
  }

  private onClose(closeReason: string | undefined): void {
    if (!this.open) return;
    this.open = false;
    const reason = this.notice ?? closeReason;
    this.calls.rejectAll(`the connection to the server was lost${reason ? `: ${reason}` : ''}`);
    this.emit('close', reason);
  }
}

/** A session's channel (session.ts) over a WebSocket connection to `address` (host:port). */
export async function openWebSocketChannel(address: string, handlers: ChannelHandlers, timeoutMs = 5000): Promise<RpcChannel> {
  const connection = await ChorusConnection.connect(address, timeoutMs);
  connection.on('group', (push) => handlers.push('group', push));
  connection.on('close', (reason) => handlers.closed(reason));
  return {
    get connected() {
      return connection.connected;
    },
    call: (method, params) =>
      connection.call(method as keyof ChatMethods, params as never).catch((err: unknown) => {
        throw err instanceof ErrorAnswer ? new SessionError(err.code, err.message) : err;
      }),
    close: () => connection.close(),
  };
}
