/**
 * What a client does with a frame from a server, wherever the frame comes
 * from (ws in Node, a browser WebSocket, the simulator's links): a
 * notification, an error outside any call, or an answer to a call (a batch's
 * answers come as one array). Free of Node's modules, so the console's page
 * uses it too.
 */
import type { RpcResponse } from '../rpc/jsonRpc.js';

/** Where the parts of a frame from the server go. */
export interface FrameRoutes {
  /** A notification (a "group" push). */
  push(method: string, params: unknown): void;
  /** An error outside any call (id null), e.g. "too many connections". */
  notice(message: string): void;
  /** An answer to a call. */
  answer(answer: RpcResponse): void;
}

interface ServerMessage {
  method?: unknown;
  params?: unknown;
  id?: unknown;
  error?: { message?: unknown };
}

/** Route a frame from the server; what is not JSON is dropped. */
export function routeFrame(text: string, routes: FrameRoutes): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return;
  }
  for (const message of Array.isArray(parsed) ? parsed : [parsed]) {
    if (typeof message !== 'object' || message === null) continue;
    const m = message as ServerMessage;
    if (typeof m.method === 'string') routes.push(m.method, m.params);
    else if (m.id === null && m.error) routes.notice(String(m.error.message));
    else routes.answer(message as RpcResponse);
  }
}
