/**
 * JSON-RPC 2.0 (https://www.jsonrpc.org/specification) as Chorus's ports
 * speak it: the shapes of requests and answers, the error a method throws
 * to refuse a request, and a table of methods that answers a frame. The
 * client port (endpoint.ts), the control port and the console's port answer
 * through it; clients (src/client/) read the same shapes.
 *
 * A method that answers at once is answered at once, without a promise in
 * between: the client port answers tens of thousands of requests a second,
 * and json-rpc-2.0's server, which this replaces, spent more on its
 * ES5-downlevelled async machinery than on the request.
 */
import { RpcErrors } from './protocol.js';

export type RequestId = string | number | null;

export interface ErrorObject {
  readonly code: number;
  readonly message: string;
  readonly data?: unknown;
}

export type RpcResponse =
  | { readonly jsonrpc: '2.0'; readonly id: RequestId; readonly result: unknown; readonly error?: undefined }
  | { readonly jsonrpc: '2.0'; readonly id: RequestId; readonly error: ErrorObject; readonly result?: undefined };

/** What a frame is answered with: one answer, an array for a batch, or nothing (notifications only). */
export type FrameAnswer = RpcResponse | RpcResponse[] | undefined;

/** Thrown by a method to refuse its request: the client gets this code, message and data. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

export function errorResponse(id: RequestId, code: number, message: string, data?: unknown): RpcResponse {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}

/** A method: its parameters and the caller's context (a session, a socket) in, its result out, now or later. */
export type Method<C> = (params: unknown, context: C) => unknown;

/** Told of an error a method threw that was not an RpcError (a bug, not a refusal). */
export type UnexpectedErrorListener = (method: string, error: unknown) => void;

/**
 * A method that throws anything but an RpcError has a bug: the operator
 * hears of it. A refused request (bad parameters, a rule, a limit) is
 * answered to its client and is no news to the operator, so that a client
 * sending bad input cannot flood the daemon's output.
 */
function warnUnexpected(method: string, error: unknown): void {
  console.warn(`an unexpected error in the ${method} method:`, error);
}

interface RequestShape {
  jsonrpc?: unknown;
  method?: unknown;
  params?: unknown;
  id?: unknown;
}

const isId = (id: unknown): id is RequestId => typeof id === 'string' || typeof id === 'number' || id === null;

export class MethodTable<C> {
  private readonly methods = new Map<string, Method<C>>();

  constructor(private readonly unexpected: UnexpectedErrorListener = warnUnexpected) {}

  add(name: string, method: Method<C>): void {
    this.methods.set(name, method);
  }

  get names(): string[] {
    return [...this.methods.keys()];
  }

  /** Answer a frame's text: a parse error if it is not JSON. */
  receiveText(text: string, context: C, done: (answer: FrameAnswer) => void): void {
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      return done(errorResponse(null, RpcErrors.parseError, 'parse error: the request is not valid JSON'));
    }
    this.receive(frame, context, done);
  }

  /**
   * Answer a parsed frame, a request or a batch of them, calling each
   * request's method in order. `done` runs once with every answer (at once
   * if every method answered at once); a notification (no id) is not
   * answered.
   */
  receive(frame: unknown, context: C, done: (answer: FrameAnswer) => void): void {
    if (!Array.isArray(frame)) return this.answer(frame, context, (response) => done(response));
    if (frame.length === 0) return done(errorResponse(null, RpcErrors.invalidRequest, 'invalid request: an empty batch'));
    const responses: (RpcResponse | undefined)[] = new Array<RpcResponse | undefined>(frame.length);
    let left = frame.length;
    const settled = (i: number, response: RpcResponse | undefined) => {
      responses[i] = response;
      if (--left > 0) return;
      const answers = responses.filter((r): r is RpcResponse => r !== undefined);
      done(answers.length > 0 ? answers : undefined);
    };
    frame.forEach((request, i) => this.answer(request, context, (response) => settled(i, response)));
  }

  private answer(request: unknown, context: C, done: (response: RpcResponse | undefined) => void): void {
    const r = (typeof request === 'object' && request !== null ? request : {}) as RequestShape;
    const hasId = r.id !== undefined;
    if (r.jsonrpc !== '2.0' || typeof r.method !== 'string' || (hasId && !isId(r.id))) {
      return done(errorResponse(isId(r.id) ? r.id : null, RpcErrors.invalidRequest, 'invalid request: expected a JSON-RPC 2.0 request object'));
    }
    const id = hasId ? (r.id as RequestId) : undefined;
    const name = r.method;
    const reply = (response: RpcResponse) => done(id === undefined ? undefined : response);
    const failed = (error: unknown) => reply(this.errorFor(id ?? null, name, error));
    const method = this.methods.get(name);
    if (method === undefined) return reply(errorResponse(id ?? null, RpcErrors.methodNotFound, `method not found: ${name}`));
    let result: unknown;
    try {
      result = method(r.params, context);
    } catch (error) {
      return failed(error);
    }
    if (!(result instanceof Promise)) return reply({ jsonrpc: '2.0', id: id ?? null, result: result ?? null });
    result.then((value: unknown) => reply({ jsonrpc: '2.0', id: id ?? null, result: value ?? null }), failed);
  }

  private errorFor(id: RequestId, method: string, error: unknown): RpcResponse {
    if (error instanceof RpcError) return errorResponse(id, error.code, error.message, error.data);
    this.unexpected(method, error);
    return errorResponse(id, RpcErrors.internalError, `internal error in ${method}: ${(error as Error)?.message ?? String(error)}`);
  }
}
