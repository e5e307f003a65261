/**
 * The client port without its sockets: sessions, JSON-RPC frames in and
 * answers out, the methods, the limits, and the pushes. The daemon runs it
 * behind a WebSocket server (server.ts); the simulator runs the same code
 * over in-memory links on simulated time, so that what clients see (request
 * replays, stable outcomes, push diffs) is checked in every seed.
 *
 * Anyone can connect, so everything is bounded (RpcLimits): connections,
 * requests per second per connection, bytes per frame. Each limit is
 * answered with a JSON-RPC error object saying which limit, never a silent
 * drop; parameters are checked against their schemas (params.ts).
 */
import type { Group } from '../chat/model.js';
import type { ChatService, Session } from './chatService.js';
import { describeMethods } from './discovery.js';
import { errorResponse, MethodTable, type RequestId } from './jsonRpc.js';
import { parseParams, type ParamsOf } from './params.js';
import type { RpcTimers } from './timers.js';
import { closeGoingAway, closeTryAgainLater, errorRules, recentMessages, RpcErrors, type ChatMethod, type ChatMethods, type GroupChanges, type RpcLimits } from './protocol.js';

/**
 * A push that would only mark messages stable (or change the participants),
 * the group itself unchanged, waits until this long after the session's
 * previous push: under load the stable point moves on every step, and a
 * push for each move costs the server more than the marks are worth.
 */
export const markPushIntervalMs = 100;

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

/** One client's connection, as the endpoint needs it: a WebSocket in the daemon, a simulated link in the simulator. */
export interface ClientSocket {
  readonly open: boolean;
  send(text: string): void;
  close(code: number, reason: string): void;
}

/** What a push is built from; the simulator plants a broken one here (TEST ONLY), the daemon uses the service's. */
export interface PushParts {
  /** What changed in `group` since the client was shown `base` (GroupReader.changesSince). */
  changesSince(service: ChatService, group: string, base: Group | undefined): GroupChanges;
}

const servicePushParts: PushParts = { changesSince: (service, group, base) => service.reader.changesSince(group, base) };

export interface RpcConnection {
  readonly socket: ClientSocket;
  readonly session: Session;
  /** The group as this session was last shown it (join or push): the next push says what changed since. */
  base?: Group;
  /**
   * The group as it was at each page of its history the session read since
   * (newer than `base`): the next push says what changed since any of them,
   * since a like shown on a page may be gone again by the push.
   */
  pages: Group[];
  /** Pushes sent to this session since its join. */
  version: number;
  /** When the last push was sent (the timers' clock). */
  pushedAt: number;
  /** Requests handed to the methods and not answered yet: a clean stop waits for them. */
  pending: number;
  lastPushed?: string;
  /** Token bucket for the request rate: requests left, refilled at requestsPerSecond. */
  tokens: number;
  tokensAt: number;
}

/** A Chorus error's answer, with its rule's name as data, as JSON. */
function errorText(id: RequestId, code: number, message: string): string {
  const rule = errorRules[code];
  return JSON.stringify(errorResponse(id, code, message, rule === undefined ? undefined : { rule }));
}

/** The same error for each request of a frame (one answer, or an array for a batch). */
function errorAnswers(requests: readonly unknown[], batch: boolean, code: number, message: string): string {
  const ids = requests.map((r) => (r as { id?: RequestId }).id).filter((id) => id !== undefined);
  if (!batch && ids.length === 1) return errorText(ids[0], code, message);
  return `[${ids.length > 0 ? ids.map((id) => errorText(id, code, message)).join(',') : errorText(null, code, message)}]`;
}

/** One push's changes of a group, by the version of it a session was last shown. */
type ChangesByBase = Map<Group | undefined, { changes: GroupChanges; text: string }>;

/**
 * What changed since either of two states the client may hold parts of: the
 * history from the earlier of the two places on (the same messages, read
 * from the current state), and every like change before it.
 */
function mergeChanges(a: GroupChanges, b: GroupChanges): GroupChanges {
  const [first, second] = a.from <= b.from ? [a, b] : [b, a];
  const likes = new Map(first.likes.map((l) => [l.n, l]));
  for (const l of second.likes) if (l.n < first.from) likes.set(l.n, l);
  return { ...first, likes: [...likes.values()].sort((x, y) => x.n - y.n) };
}

export class RpcEndpoint {
  private readonly rpc = new MethodTable<RpcConnection>();
  /** Requests answered with an error (bad parameters, a rule, a limit, a malformed frame): counted for the status, never logged. */
  refusedRequests = 0;
  readonly connections = new Set<RpcConnection>();
  private nextSession = 1;
  private cancelPush: (() => void) | undefined;
  /** A push held back (only stable marks changed) goes out when this fires. */
  private cancelLater: (() => void) | undefined;
  private pushDelayMs = pushIntervalMs;
  private readonly unsubscribe: () => void;
  /** Set by stop(crashed): a crashed server's sessions end without a word; its restart makes them leave. */
  private crashed = false;
  /** Set by stop(): requests that still come are answered 4008, those accepted before are answered. */
  private closing = false;

  constructor(
    private readonly service: ChatService,
    private readonly limits: RpcLimits,
    private readonly timers: RpcTimers,
    /** Session ids are "<sessionPrefix>.<n>": the server and something that tells this run from earlier ones. */
    private readonly sessionPrefix: string,
    private readonly pushParts: PushParts = servicePushParts,
  ) {
    this.addMethods();
    // Stable marks alone wait for the marks interval: under load the stable point moves on every step.
    this.unsubscribe = service.port.onChange((change) => (change === 'stable' ? this.pushLater(markPushIntervalMs) : this.schedulePush()));
  }

  /** The methods this endpoint answers, as registered. */
  get methodNames(): string[] {
    return this.rpc.names;
  }

  get sessionCount(): number {
    return this.connections.size;
  }

  /** Requests handed to the methods and not answered yet, on connections still open. */
  get pendingRequests(): number {
    let pending = 0;
    for (const c of this.connections) if (c.socket.open) pending += c.pending;
    return pending;
  }

  private addMethods(): void {
    const s = this.service;
    type Result<M extends ChatMethod> = ChatMethods[M]['result'] | Promise<ChatMethods[M]['result']>;
    const method = <M extends ChatMethod>(name: M, handler: (params: ParamsOf<M>, c: RpcConnection) => Result<M>) => {
      this.rpc.add(name, (params, c) => {
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
      c.pages = [];
      c.version = 0;
      return view;
    });
    method('leave', (_params, c) => s.leave(c.session));
    method('append', ({ text, wait, requestId, doneBelow }, c) => s.append(c.session, text, { wait, requestId, doneBelow }));
    method('like', ({ id, wait, requestId, doneBelow }, c) => s.like(c.session, id, true, { wait, requestId, doneBelow }));
    method('unlike', ({ id, wait, requestId, doneBelow }, c) => s.like(c.session, id, false, { wait, requestId, doneBelow }));
    method('history', async (params, c) => {
      const page = await s.history(c.session, params ?? {});
      const state = page.group === c.session.group ? s.reader.groupState(page.group) : undefined;
      if (state && state !== c.base && !c.pages.includes(state)) c.pages.push(state);
      return page;
    });
    method('groups', () => s.reader.groups());
    const methods = describeMethods();
    method('rpc.discover', () => ({ methods }));
    method('view', () => s.reader.view());
  }

  /** A new connection: a session, or refused (shutting down, too many connections) and closed. */
  connect(socket: ClientSocket): RpcConnection | undefined {
    if (this.closing) {
      socket.close(closeGoingAway, 'the server is shutting down');
      return undefined;
    }
    if (this.connections.size >= this.limits.maxConnections) {
      this.refusedRequests++;
      const why = `too many connections: this server allows ${this.limits.maxConnections}; try again later or connect to another server`;
      socket.send(errorText(null, RpcErrors.tooManyConnections, why));
      socket.close(closeTryAgainLater, 'too many connections');
      return undefined;
    }
    const connection: RpcConnection = {
      socket,
      session: { id: `${this.sessionPrefix}.${this.nextSession++}` },
      tokens: this.limits.requestsPerSecond,
      tokensAt: this.timers.now(),
      pending: 0,
      version: 0,
      pushedAt: -Infinity,
      pages: [],
    };
    this.connections.add(connection);
    return connection;
  }

  /** The connection closed: its user leaves its group (unless the server crashed: its restart makes them leave). */
  disconnected(c: RpcConnection): void {
    this.connections.delete(c);
    if (!this.crashed) void this.service.closeSession(c.session);
  }

  /** A frame from the client: its answer (one, or an array for a batch) goes back on the same socket. */
  receive(c: RpcConnection, data: string, isBinary = false): void {
    const reply = (text: string) => {
      if (c.socket.open) c.socket.send(text);
    };
    const refuse = (code: number, message: string) => {
      this.refusedRequests++;
      reply(errorText(null, code, message));
    };
    if (isBinary) return refuse(RpcErrors.invalidRequest, 'expected a text frame with JSON');
    const bytes = Buffer.byteLength(data);
    if (bytes > this.limits.maxFrameBytes) {
      return refuse(RpcErrors.requestTooLarge, `request too large: ${bytes} bytes; the limit is ${this.limits.maxFrameBytes} bytes`);
    }
    let request: unknown;
    try {
      request = JSON.parse(data);
    } catch {
      return refuse(RpcErrors.parseError, 'parse error: the request is not valid JSON');
    }
    const batch = Array.isArray(request);
    const requests: unknown[] = batch ? (request as unknown[]) : [request];
    if (requests.length === 0 || requests.some((r) => typeof r !== 'object' || r === null || Array.isArray(r))) {
      return refuse(RpcErrors.invalidRequest, 'invalid request: expected a JSON-RPC 2.0 request object or a non-empty array of them');
    }
    if (this.closing) {
      this.refusedRequests += requests.length;
      return reply(errorAnswers(requests, batch, RpcErrors.unavailable, 'the server is shutting down and takes no more requests; connect to another server'));
    }
    if (!this.takeTokens(c, Math.max(requests.length, 1))) {
      this.refusedRequests += requests.length;
      return reply(errorAnswers(requests, batch, RpcErrors.rateLimited, `rate limit: at most ${this.limits.requestsPerSecond} requests per second per connection; slow down`));
    }
    c.pending++;
    this.rpc.receive(request, c, (answer) => {
      c.pending--;
      if (answer === undefined) return;
      for (const a of Array.isArray(answer) ? answer : [answer]) if (a.error) this.refusedRequests++;
      reply(JSON.stringify(answer));
    });
  }

  private takeTokens(c: RpcConnection, count: number): boolean {
    const at = this.timers.now();
    const rate = this.limits.requestsPerSecond;
    c.tokens = Math.min(rate, c.tokens + ((at - c.tokensAt) / 1000) * rate);
    c.tokensAt = at;
    if (c.tokens < count) return false;
    c.tokens -= count;
    return true;
  }

  private schedulePush(): void {
    if (this.cancelPush) return;
    this.cancelPush = this.timers.after(this.pushDelayMs, () => {
      this.cancelPush = undefined;
      const start = this.timers.now();
      this.push();
      this.pushDelayMs = Math.max(pushIntervalMs, pushCostFactor * (this.timers.now() - start));
    });
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
    const changes = new Map<string, ChangesByBase>();
    const stableTs = this.service.port.stableTs();
    const now = this.timers.now();
    for (const c of this.connections) {
      const group = c.session.group;
      if (group === undefined || !c.socket.open) continue;
      let view = views.get(group);
      if (view === undefined) {
        view = { text: JSON.stringify(this.service.reader.groupSnapshot(group, recentMessages)), state: this.service.reader.groupState(group) };
        views.set(group, view);
      }
      if (view.state === c.base) {
        if (view.text === c.lastPushed) continue;
        const wait = c.pushedAt + markPushIntervalMs - now;
        if (wait > 0) {
          this.pushLater(wait);
          continue;
        }
      }
      const byBase = changes.get(group) ?? new Map();
      changes.set(group, byBase);
      const changed = this.changesText(c, group, byBase);
      c.lastPushed = view.text;
      c.base = view.state;
      c.pages = [];
      c.pushedAt = now;
      c.version++;
      c.socket.send(`{"jsonrpc":"2.0","method":"group","params":${view.text.slice(0, -1)},"version":${c.version},"stableTs":${stableTs},"changes":${changed}}}`);
    }
  }

  /**
   * What changed for session `c` since it was last shown its group, as JSON.
   * Sessions last shown the same version share one computation and one
   * serialisation (`byBase`); one that read pages since gets its own merge.
   */
  private changesText(c: RpcConnection, group: string, byBase: ChangesByBase): string {
    const since = (base: Group | undefined) => {
      let changed = byBase.get(base);
      if (changed === undefined) {
        const computed = this.pushParts.changesSince(this.service, group, base);
        changed = { changes: computed, text: JSON.stringify(computed) };
        byBase.set(base, changed);
      }
      return changed;
    };
    if (c.pages.length === 0) return since(c.base).text;
    return JSON.stringify(c.pages.reduce((merged, page) => mergeChanges(merged, since(page).changes), since(c.base).changes));
  }

  /** Push again in `ms` (what was held back then goes out). */
  private pushLater(ms: number): void {
    if (this.cancelLater) return;
    this.cancelLater = this.timers.after(ms, () => {
      this.cancelLater = undefined;
      this.schedulePush();
    });
  }

  /**
   * Stop: requests that still come are answered 4008 (shutting down);
   * operations waiting to become stable are answered 4008 too; no more
   * pushes. After a crash, closed connections do not make their users leave.
   */
  stop(crashed: boolean): void {
    this.crashed ||= crashed;
    this.closing = true;
    this.service.abandonStableWaits();
    this.unsubscribe();
    this.cancelPush?.();
    this.cancelLater?.();
  }
}
