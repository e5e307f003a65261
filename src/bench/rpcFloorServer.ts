/**
 * The benchmark's RPC floor: one of five processes that answer the chat's
 * client requests as a daemon's client port would (JSON-RPC 2.0 over
 * WebSocket, a batch of requests per frame, one answer frame per frame) and
 * do nothing else: no broadcast, no journal, no chat state, no pushes. The
 * bench's load clients (the client library, as in the throughput phase)
 * flood these; whatever an append costs above what it costs here is the
 * price of ordering, persisting and applying it. Run by tools/bench; prints
 * one JSON line.
 *
 *   rpcFloorServer.js <id> <port> <start at (epoch ms)> <warm-up ms> <measure ms>
 */
import { WebSocketServer, type WebSocket } from 'ws';

export interface RpcFloorServerResult {
  /** CPU time (user and system) this process used during the measured time. */
  readonly cpuMs: number;
}

interface Request {
  readonly id?: number | string;
  readonly method?: unknown;
  readonly params?: { readonly name?: unknown; readonly group?: unknown };
}

/** Time to close and report after the measured time (the bench's clients have closed by then). */
const closeAfterMs = 500;

const [idText, portText, startAtText, warmupText, measureText] = process.argv.slice(2);
const id = Number(idText);
const measureFrom = Number(startAtText) + Number(warmupText);
const measureUntil = measureFrom + Number(measureText);
let ts = 0;

/** What a daemon would answer, as small: the group a join reaches is empty, an append is tentative at once. */
function answer(request: Request): object {
  const { method, params } = request;
  if (method === 'user') return { jsonrpc: '2.0', id: request.id, result: { user: params?.name } };
  if (method === 'join') return { jsonrpc: '2.0', id: request.id, result: { group: params?.group, participants: [], total: 0, messages: [] } };
  if (method === 'append') return { jsonrpc: '2.0', id: request.id, result: { id: `${++ts}.${id}`, tentative: true } };
  return { jsonrpc: '2.0', id: request.id ?? null, error: { code: -32601, message: `the RPC floor answers user, join and append, not ${String(method)}` } };
}

function onFrame(socket: WebSocket, data: Buffer): void {
  let requests: unknown;
  try {
    requests = JSON.parse(data.toString('utf8'));
  } catch {
    return socket.close(1007, 'not JSON');
  }
  socket.send(JSON.stringify(Array.isArray(requests) ? requests.map((r: Request) => answer(r)) : answer(requests as Request)));
}

const server = new WebSocketServer({ host: '127.0.0.1', port: Number(portText) });
server.on('connection', (socket) => socket.on('message', (data) => onFrame(socket, data as Buffer)));

const untilEpoch = (epochMs: number) => new Promise((r) => setTimeout(r, Math.max(0, epochMs - Date.now())));
await untilEpoch(measureFrom);
const cpuStart = process.cpuUsage();
await untilEpoch(measureUntil);
const cpu = process.cpuUsage(cpuStart);
const result: RpcFloorServerResult = { cpuMs: (cpu.user + cpu.system) / 1000 };
await untilEpoch(measureUntil + closeAfterMs);
for (const socket of server.clients) socket.terminate();
server.close();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
