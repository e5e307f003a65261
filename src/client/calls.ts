/**
 * A client's calls waiting for their answers, whatever carries the frames
 * (ws in Node, a browser WebSocket, the simulator's links): each request
 * gets the next id and its JSON-RPC 2.0 text, which the caller sends (alone
 * or in a batch); the answer with that id settles it. Free of Node's
 * modules, so the console's page uses it too. (A map of promises: the
 * json-rpc-2.0 client it replaced cost two to three times as much per call.)
 */
import type { RpcResponse } from '../rpc/jsonRpc.js';

/** A call that failed: the server's error answer (its JSON-RPC code, message and data), or code 0 (or the refusing HTTP status) when no connection could carry it. */
export class ErrorAnswer extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'ErrorAnswer';
  }
}

interface Waiting {
  readonly resolve: (result: unknown) => void;
  readonly reject: (error: Error) => void;
}

export class PendingCalls {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiting>();

  /** A call: the request's text to send, and its result (an ErrorAnswer if the server answers with an error). */
  request(method: string, params: unknown): { readonly text: string; readonly result: Promise<unknown> } {
    const id = this.nextId++;
    const text = JSON.stringify({ jsonrpc: '2.0', method, params, id });
    const result = new Promise<unknown>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    return { text, result };
  }

  /** An answer from the server settles the call it names; one that names no waiting call is dropped. */
  receive(answer: RpcResponse): void {
    if (typeof answer.id !== 'number') return;
    const waiting = this.waiting.get(answer.id);
    if (!waiting) return;
    this.waiting.delete(answer.id);
    const error: unknown = answer.error;
    if (error === undefined || error === null) return waiting.resolve(answer.result);
    // Trusted no more than any frame: a malformed error still fails the call, with what it said.
    const { code, message, data } = (typeof error === 'object' ? error : { message: error }) as { code?: unknown; message?: unknown; data?: unknown };
    const text = typeof message === 'string' ? message : JSON.stringify(message ?? 'an error without a message');
    waiting.reject(new ErrorAnswer(typeof code === 'number' ? code : 0, text, data));
  }

  /** The connection is gone: every waiting call fails with `message`. */
  rejectAll(message: string): void {
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const { reject } of waiting) reject(new Error(message));
  }

  /** Calls not answered yet. */
  get size(): number {
    return this.waiting.size;
  }
}
