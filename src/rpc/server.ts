/**
 * The RPC server: JSON-RPC 2.0 over WebSocket on the daemon's client port.
 * Each connection is a session; closing it makes its user leave the group.
 * Subscribed sessions (those in a group) get a `group` notification whenever
 * what they would see changes.
 *
 * Anyone can connect, so everything is bounded (RpcLimits): connections,
 * requests per second per connection, bytes per frame. Each limit is
 * answered with a JSON-RPC error object saying which limit, never a silent
 * drop; parameters are checked against their schemas (params.ts).
 */
import { randomBytes } from 'node:crypto';
import { JSONRPCErrorException, JSONRPCServer, type JSONRPCRequest } from 'json-rpc-2.0';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ServerAddress } from '../config/clusterConfig.js';
import { ChorusError } from '../errors.js';
import type { Group } from '../chat/model.js';
import type { ChatService, Session } from './chatService.js';
import { describeMethods } from './discovery.js';
import { parseParams, type ParamsOf } from './params.js';
import { closeGoingAway, closeTryAgainLater, defaultRpcLimits, errorRules, recentMessages, RpcErrors, type ChatMethod, type ChatMethods, type RpcLimits } from './protocol.js';

/** Frames this many times the limit are not read at all: the WebSocket closes with 1009 (message too big). */
const hardFrameFactor = 16;

/**
 * After a clean stop has answered every accepted request it goes on
 * answering 4008 this long before it closes: a request a client sent before
 * it saw its first 4008 still gets an answer (none is possible once the
 * close frame is out).
 */
const closeGraceMs = 100;

/**
 * A push that would only mark messages stable (or change the participants),
 * the group itself unchanged, waits until this long after the session's
 * previous push: under load the stable point moves on every step, and a
 * push for each move costs the server more than the marks are worth.
 */
const markPushIntervalMs = 100;

/** Pushes to one session are coalesced: at most one per this period. */
const pushIntervalMs = 10;
/**
 * ... and one per this many times what building the last one took: while a
 * heal lands thousands of messages inside the tentative suffix, or a flood
 * changes hundreds of messages between pushes, each push re-applies and
 * serialises what changed, and pushes then take a small share of the
 * server's time instead of most of it. (At 10, measured once the history
 * store's writes had moved out of pushes, where they had been a hidden part
 * of a push's cost, a flood got 4.5 times as many pushes as before: 1,251
 * against 275 to the bench's 10 clients, and 8% less throughput. 40 gives
 * back the earlier rate; at 1,000 appends/s pushes still go every 10 ms.)
 */
const pushCostFactor = 40;

interface Connection {
  readonly socket: WebSocket;
  readonly session: Session;
  /** The group as this session was last shown it (join or push): the next push says what changed since. */
  base?: Group;
  /** Pushes sent to this session since its join. */
  version: number;
  /** When the last push was sent (the `now` clock). */
  pushedAt: number;
  /** Requests handed to the methods and not answered yet: a clean stop waits for them. */
  pending: number;
  lastPushed?: string;
  /** Token bucket for the request rate: requests left, refilled at requestsPerSecond. */
  tokens: number;
  tokensAt: number;
}

function errorResponse(id: JSONRPCRequest['id'] | null, code: number, message: string): string {
  const rule = errorRules[code];
  return JSON.stringify({ jsonrpc: '2.0', id: id ?? null, error: { code, message, ...(rule === undefined ? {} : { data: { rule } }) } });
}

/** The same error for each request of a frame (one answer, or an array for a batch). */
function errorAnswers(requests: readonly unknown[], code: number, message: string): string {
  const ids = requests.map((r) => (typeof r === 'object' && r !== null ? (r as { id?: JSONRPCRequest['id'] }).id : undefined));
  const answers = ids.filter((id) => id !== undefined).map((id) => errorResponse(id, code, message));
  return answers.length === 1 ? answers[0] : `[${answers.length > 0 ? answers.join(',') : errorResponse(null, code, message)}]`;
}

/**
 * The JSON-RPC library reports every error a method throws. A refused
 * request (bad parameters, a rule, a limit) is answered to its client and
 * is no news to the operator: without this, a client sending bad input would
 * flood the daemon's output with a stack trace each.
 */
export function warnUnexpected(message: string, error: unknown): void {
  if (error instanceof JSONRPCErrorException) return;
  console.warn(message, error);
}

export class RpcServer {
  private readonly rpc = new JSONRPCServer<Connection>({ errorListener: warnUnexpected });
  /** The methods this server answers, as registered. */
  readonly methodNames: string[] = [];
  /** Requests answered with an error (bad parameters, a rule, a limit, a malformed frame): counted for the status, never logged. */
  refusedRequests = 0;
  private readonly connections = new Set<Connection>();
  /** Distinguishes this daemon run's sessions from those of earlier runs. */
  private readonly bootId = randomBytes(4).toString('hex');
  private nextSession = 1;
  private pushTimer: NodeJS.Timeout | undefined;
  /** A push held back (only stable marks changed) goes out when this fires. */
  private laterTimer: NodeJS.Timeout | undefined;
  private pushDelayMs = pushIntervalMs;
  private readonly unsubscribe: () => void;
  /** Set by crash(): a crashed server's sessions end without a word; its restart makes them leave. */
  private crashed = false;
  /** Set by close(): requests that still come are answered 4008, those accepted before are answered, then each connection closes. */
  private closing = false;

  private constructor(
    private readonly wss: WebSocketServer,
    private readonly service: ChatService,
    private readonly limits: RpcLimits,
    /** Milliseconds, for the request-rate limiter (tests pass their own). */
    private readonly now: () => number,
  ) {
    this.addMethods();
    wss.on('connection', (socket) => this.onConnection(socket));
    // Stable marks alone wait for the marks interval: under load the stable point moves on every step.
    this.unsubscribe = service.port.onChange((change) => (change === 'stable' ? this.pushLater(markPushIntervalMs) : this.schedulePush()));
  }

  static async start(address: ServerAddress, service: ChatService, limits: RpcLimits = defaultRpcLimits, now: () => number = () => performance.now()): Promise<RpcServer> {
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
    return new RpcServer(wss, service, limits, now);
  }

  get sessionCount(): number {
    return this.connections.size;
  }

  private addMethods(): void {
    const s = this.service;
    type Result<M extends ChatMethod> = ChatMethods[M]['result'] | Promise<ChatMethods[M]['result']>;
    const method = <M extends ChatMethod>(name: M, handler: (params: ParamsOf<M>, c: Connection) => Result<M>) => {
      this.methodNames.push(name);
      this.rpc.addMethod(name, (params, c) => {
        const parsed = parseParams(name, params);
        const after = (parsed as { after?: number } | undefined)?.after;
        if (after !== undefined) s.observe(c.session, after);
        return handler(parsed, c);
      });
    };
    method('user', ({ name }, c) => s.setUser(c.session, name));
    method('join', async ({ group }, c) => {
      const view = await s.join(c.session, group);
      c.lastPushed = JSON.stringify(view);
      c.base = s.reader.groupState(group);
      c.version = 0;
      return view;
    });
    method('leave', (_params, c) => s.leave(c.session));
    method('append', ({ text, wait, requestId, doneBelow }, c) => s.append(c.session, text, { wait, requestId, doneBelow }));
    method('like', ({ id, wait, requestId, doneBelow }, c) => s.like(c.session, id, true, { wait, requestId, doneBelow }));
    method('unlike', ({ id, wait, requestId, doneBelow }, c) => s.like(c.session, id, false, { wait, requestId, doneBelow }));
    method('history', (params, c) => s.history(c.session, params ?? {}));
    method('groups', () => s.reader.groups());
    const methods = describeMethods();
    method('rpc.discover', () => ({ methods }));
    method('view', () => s.reader.view());
  }

  private onConnection(socket: WebSocket): void {
    socket.on('error', () => socket.terminate());
    if (this.closing) {
      socket.close(closeGoingAway, 'the server is shutting down');
      return;
    }
    if (this.connections.size >= this.limits.maxConnections) {
      this.refusedRequests++;
      const why = `too many connections: this server allows ${this.limits.maxConnections}; try again later or connect to another server`;
      socket.send(errorResponse(null, RpcErrors.tooManyConnections, why));
      socket.close(closeTryAgainLater, 'too many connections');
      return;
    }
    const connection: Connection = {
      socket,
      session: { id: `${this.service.port.server}.${this.bootId}.${this.nextSession++}` },
      tokens: this.limits.requestsPerSecond,
      tokensAt: this.now(),
      pending: 0,
      version: 0,
      pushedAt: -Infinity,
    };
    this.connections.add(connection);
    socket.on('message', (data, isBinary) => this.onFrame(connection, data as Buffer, isBinary));
    socket.on('close', () => {
      this.connections.delete(connection);
      if (!this.crashed) void this.service.closeSession(connection.session);
    });
  }

  private onFrame(c: Connection, data: Buffer, isBinary: boolean): void {
    const reply = (text: string) => {
      if (c.socket.readyState === c.socket.OPEN) c.socket.send(text);
    };
    const refuse = (code: number, message: string) => {
      this.refusedRequests++;
      reply(errorResponse(null, code, message));
    };
    if (isBinary) return refuse(RpcErrors.invalidRequest, 'expected a text frame with JSON');
    if (data.length > this.limits.maxFrameBytes) {
      return refuse(RpcErrors.requestTooLarge, `request too large: ${data.length} bytes; the limit is ${this.limits.maxFrameBytes} bytes`);
    }
    let request: unknown;
    try {
      request = JSON.parse(data.toString('utf8'));
    } catch {
      return refuse(RpcErrors.parseError, 'parse error: the request is not valid JSON');
    }
    const requests = Array.isArray(request) ? request : [request];
    if (requests.length === 0 || requests.some((r) => typeof r !== 'object' || r === null || Array.isArray(r))) {
      return refuse(RpcErrors.invalidRequest, 'invalid request: expected a JSON-RPC 2.0 request object or a non-empty array of them');
    }
    if (this.closing) {
      this.refusedRequests += requests.length;
      return reply(errorAnswers(requests, RpcErrors.unavailable, 'the server is shutting down and takes no more requests; connect to another server'));
    }
    if (!this.takeTokens(c, Math.max(requests.length, 1))) {
      this.refusedRequests += requests.length;
      return reply(errorAnswers(requests, RpcErrors.rateLimited, `rate limit: at most ${this.limits.requestsPerSecond} requests per second per connection; slow down`));
    }
    c.pending++;
    void this.rpc.receive(request as JSONRPCRequest, c).then((response) => {
      c.pending--;
      for (const answer of Array.isArray(response) ? response : [response]) if (answer && 'error' in answer) this.refusedRequests++;
      if (response && (!Array.isArray(response) || response.length > 0)) reply(JSON.stringify(response));
    });
  }

  private takeTokens(c: Connection, count: number): boolean {
    const at = this.now();
    const rate = this.limits.requestsPerSecond;
    c.tokens = Math.min(rate, c.tokens + ((at - c.tokensAt) / 1000) * rate);
    c.tokensAt = at;
    if (c.tokens < count) return false;
    c.tokens -= count;
    return true;
  }

  private schedulePush(): void {
    if (this.pushTimer) return;
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined;
      const start = this.now();
      this.push();
      this.pushDelayMs = Math.max(pushIntervalMs, pushCostFactor * (this.now() - start));
    }, this.pushDelayMs);
  }

  /**
   * Push to each session in a group whose group changed: its last messages
   * (as after a join) and what changed since its previous push, so that a
   * client can keep an exact copy. Sessions in the same group are shown the
   * same view, built once; those last shown the same version of the group
   * share one computation of the changes.
   */
  private push(): void {
    const views = new Map<string, { text: string; state: Group | undefined }>();
    const changes = new Map<string, Map<Group | undefined, string>>();
    const stableTs = this.service.port.stableTs();
    for (const c of this.connections) {
      const group = c.session.group;
      if (group === undefined || c.socket.readyState !== c.socket.OPEN) continue;
      let view = views.get(group);
      if (view === undefined) {
        view = { text: JSON.stringify(this.service.reader.groupSnapshot(group, recentMessages)), state: this.service.reader.groupState(group) };
        views.set(group, view);
      }
      if (view.state === c.base) {
        if (view.text === c.lastPushed) continue;
        const wait = c.pushedAt + markPushIntervalMs - this.now();
        if (wait > 0) {
          this.pushLater(wait);
          continue;
        }
      }
      const byBase = changes.get(group) ?? new Map<Group | undefined, string>();
      changes.set(group, byBase);
      let changed = byBase.get(c.base);
      if (changed === undefined) {
        changed = JSON.stringify(this.service.reader.changesSince(group, c.base));
        byBase.set(c.base, changed);
      }
      c.lastPushed = view.text;
      c.base = view.state;
      c.pushedAt = this.now();
      c.version++;
      c.socket.send(`{"jsonrpc":"2.0","method":"group","params":${view.text.slice(0, -1)},"version":${c.version},"stableTs":${stableTs},"changes":${changed}}}`);
    }
  }

  /** Push again in `ms` (what was held back then goes out). */
  private pushLater(ms: number): void {
    if (this.laterTimer) return;
    this.laterTimer = setTimeout(() => {
      this.laterTimer = undefined;
      this.schedulePush();
    }, ms);
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
    this.closing = true;
    this.service.abandonStableWaits();
    this.unsubscribe();
    clearTimeout(this.pushTimer);
    clearTimeout(this.laterTimer);
    if (!this.crashed) {
      await this.answerPending(drainTimeoutMs);
      await new Promise((r) => setTimeout(r, closeGraceMs));
    }
    for (const c of this.connections) {
      if (this.crashed) c.socket.terminate();
      else c.socket.close(closeGoingAway, 'the server is shutting down');
    }
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private async answerPending(timeoutMs: number): Promise<void> {
    const deadline = this.now() + timeoutMs;
    const pending = () => [...this.connections].some((c) => c.pending > 0 && c.socket.readyState === c.socket.OPEN);
    while (pending() && this.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  }
}
