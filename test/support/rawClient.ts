/**
 * A JSON-RPC 2.0 client over a bare WebSocket, written from docs/rpc.md's
 * "Client RPC" section alone: it shares no code (and no types) with
 * src/client, so the tests that use it check the protocol as any program
 * in any language would see it.
 */
import WebSocket from 'ws';
import { waitUntil } from './processCluster.js';

export interface RawError {
  code: number;
  message: string;
  data?: { rule?: string; param?: string };
}

/** The fields of answers and pushes the tests read (as docs/rpc.md documents them). */
export interface RawResult {
  id: string;
  user: string;
  tentative: boolean;
  outcome?: 'applied' | 'refused';
  rule?: string;
  repeated?: boolean;
  group: string;
  total: number;
  complete?: boolean;
  participants: string[];
  messages: { n: number; id: string; user: string; text: string; likedBy: string[]; stable: boolean }[];
  groups: { group: string; total: number; participants: string[] }[];
}

export interface RawAnswer {
  id: number;
  result?: RawResult;
  error?: RawError;
}

export class RawClient {
  readonly answers = new Map<number, RawAnswer>();
  /** Notifications ("group" pushes), in arrival order. */
  readonly pushes: { method: string; params: RawResult }[] = [];
  closed: { code: number; reason: string } | undefined;
  private nextId = 1;

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const parsed = JSON.parse(String(data)) as RawAnswer | RawAnswer[] | { method: string; params: RawResult };
      for (const message of Array.isArray(parsed) ? parsed : [parsed]) {
        if ('method' in message) this.pushes.push(message);
        else this.answers.set(message.id, message);
      }
    });
    socket.on('close', (code, reason) => (this.closed = { code, reason: String(reason) }));
    socket.on('error', () => undefined);
  }

  /** Connect to host:port. */
  static async open(address: string): Promise<RawClient> {
    const socket = new WebSocket(`ws://${address}`);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    return new RawClient(socket);
  }

  /** Send a request; its id, or undefined once the connection is closing. */
  send(method: string, params: object = {}): number | undefined {
    if (this.socket.readyState !== WebSocket.OPEN) return undefined;
    const id = this.nextId++;
    this.socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    return id;
  }

  /** Send a request and wait for its answer, result or error. */
  async answer(method: string, params: object = {}, timeoutMs = 20_000): Promise<RawAnswer> {
    const id = this.send(method, params);
    if (id === undefined) throw new Error(`the connection closed before ${method}`);
    await waitUntil(() => this.answers.has(id) || this.closed !== undefined, timeoutMs, `an answer to ${method}`);
    const answer = this.answers.get(id);
    if (!answer) throw new Error(`the connection closed before the answer to ${method}`);
    return answer;
  }

  /** The result; an error answer rejects with the error object. */
  async call(method: string, params: object = {}): Promise<RawResult> {
    const answer = await this.answer(method, params);
    if (answer.error) throw answer.error;
    return answer.result!;
  }

  /** Whether the server said it is shutting down (4008) to any request. */
  get toldShuttingDown(): boolean {
    return [...this.answers.values()].some((a) => a.error?.code === 4008);
  }

  close(): void {
    this.socket.close();
  }
}
