/**
 * JSON-RPC 2.0 over a browser WebSocket: calls answered by id, notifications
 * handed to a callback, and the close (code and reason) reported once.
 * Used for the console's /api and for the chat pane's relayed connection.
 * A call fails with an ErrorAnswer: the server's error, or no connection to
 * make it on (code 0, or the WebSocket's close code).
 */
import { ErrorAnswer, PendingCalls } from '../../src/client/calls.js';
import { routeFrame } from '../../src/client/frames.js';

export interface SocketHandlers {
  notification(method: string, params: unknown): void;
  close(code: number, reason: string): void;
}

export class RpcSocket {
  private readonly calls = new PendingCalls();
  private open = false;

  private constructor(private readonly socket: WebSocket) {}

  /** Open a connection to a path of the console (e.g. /api, /chat/2). */
  static connect(path: string, handlers: SocketHandlers): Promise<RpcSocket> {
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
    const socket = new WebSocket(url);
    const rpc = new RpcSocket(socket);
    return new Promise((resolve, reject) => {
      socket.onopen = () => {
        rpc.open = true;
        resolve(rpc);
      };
      socket.onmessage = (event) => rpc.receive(String(event.data), handlers);
      socket.onclose = (event) => {
        const wasOpen = rpc.open;
        rpc.open = false;
        rpc.calls.rejectAll(event.reason || 'the connection closed');
        if (wasOpen) handlers.close(event.code, event.reason);
        else reject(new ErrorAnswer(event.code, event.reason || `cannot connect to ${path}`));
      };
    });
  }

  get connected(): boolean {
    return this.open;
  }

  async call<T>(method: string, params: object = {}): Promise<T> {
    if (!this.open || this.socket.readyState !== WebSocket.OPEN) throw new ErrorAnswer(0, 'not connected');
    const { text, result } = this.calls.request(method, params);
    this.socket.send(text);
    return (await result) as T;
  }

  close(): void {
    this.open = false;
    this.socket.close();
  }

  private receive(text: string, handlers: SocketHandlers): void {
    routeFrame(text, {
      push: (method, params) => handlers.notification(method, params),
      notice: () => undefined,
      answer: (answer) => this.calls.receive(answer),
    });
  }
}
