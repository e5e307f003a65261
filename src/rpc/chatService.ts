/**
 * What a client session can do, checked against the server's shown state
 * before anything is broadcast, so that what is broadcast is always applied
 * the same way by every daemon. Parameters arrive checked against their
 * schemas (params.ts); the chat is reached only through its port.
 */
import { JSONRPCErrorException } from 'json-rpc-2.0';
import { formatMessageId, type Message, type MessageId } from '../broadcast/types.js';
import type { ChatOp } from '../chat/operations.js';
import type { ChatPort } from '../chat/port.js';
import { likeRefusal, type LikeRefusal } from '../chat/rules.js';
import { findMessage, firstDifference, lastMessages, likesChanged, messageCount, messageRange, originalRequest, type Group, type OperationRefusal, type OriginalRequest, type ShownMessage } from '../chat/state.js';
import type { ClusterConfig } from '../config/clusterConfig.js';
import { SubmitRefused } from '../node/node.js';
import { errorRules, maxHistoryPage, RpcErrors, recentMessages, type Confirmation, type GroupChanges, type GroupSummary, type GroupView, type MessageView, type ViewResult } from './protocol.js';

/** Which page of a history to read (params.ts checks them). */
export interface HistoryParams {
  readonly group?: string;
  readonly from?: number;
  readonly since?: MessageId;
  readonly before?: MessageId;
  readonly count?: number;
  readonly after?: number;
}

/** How a client wants a mutating request answered: waiting for its stable outcome, and its request id for retries. */
export interface HowToAnswer {
  readonly wait?: 'stable';
  readonly requestId?: string;
}

function rid(how: HowToAnswer): { rid?: string } {
  return how.requestId === undefined ? {} : { rid: how.requestId };
}

export interface Session {
  readonly id: string;
  user?: string;
  group?: string;
  /** The highest timestamp the client said it has seen: its operations are ordered after it. */
  after?: number;
}

/** How long a read with `after` waits for this server to hold everything up to it. */
const readWaitMs = 2000;

/** How far ahead of this server's clock a causal token may be (a partition lets clocks drift apart by about the messages sent meanwhile). */
const maxCausalLead = 1_000_000_000;

/** A Chorus error as clients get it: its code, a message for people, and `data.rule`, its stable name. */
export function rpcError(code: number, message: string): JSONRPCErrorException {
  return new JSONRPCErrorException(message, code, { rule: errorRules[code] });
}

const likeErrors: Record<LikeRefusal, [number, string]> = {
  'own-message': [RpcErrors.ownMessage, 'you cannot like your own message'],
  'already-liked': [RpcErrors.alreadyLiked, 'you already like this message'],
  'not-liked': [RpcErrors.notLiked, 'you have not liked this message'],
};

export class ChatService {
  /** Answers waiting for their operation to become stable (wait "stable"): failed if the server stops first. */
  private readonly stableWaits = new Set<(error: Error) => void>();

  constructor(
    readonly port: ChatPort,
    private readonly config: ClusterConfig,
  ) {}

  setUser(session: Session, name: string): { user: string } {
    if (session.group !== undefined && session.user !== name) {
      throw rpcError(RpcErrors.renameInGroup, 'the user name cannot change while in a group: call leave first');
    }
    session.user = name;
    return { user: name };
  }

  async join(session: Session, name: string): Promise<GroupView> {
    const user = requireUser(session);
    await this.submit({ op: 'join', session: session.id, user, group: name }, session);
    session.group = name;
    return this.groupView(name, recentMessages);
  }

  async leave(session: Session): Promise<Confirmation> {
    if (session.group === undefined) throw rpcError(RpcErrors.noGroup, 'not in a group');
    const m = await this.submit({ op: 'leave', session: session.id }, session);
    session.group = undefined;
    return this.confirmation(m);
  }

  async append(session: Session, text: string, how: HowToAnswer = {}): Promise<Confirmation> {
    const user = requireUser(session);
    const group = requireGroup(session);
    const repeated = this.repeated(user, how.requestId);
    if (repeated) return repeated;
    return this.confirm({ op: 'append', session: session.id, user, group, text, ...rid(how) }, session, how.wait);
  }

  async like(session: Session, targetId: MessageId, like: boolean, how: HowToAnswer = {}): Promise<Confirmation> {
    const user = requireUser(session);
    const group = requireGroup(session);
    const repeated = this.repeated(user, how.requestId);
    if (repeated) return repeated;
    const current = this.currentGroup(group);
    const target = current && findMessage(current, targetId, this.port.history);
    if (!target) throw rpcError(RpcErrors.unknownMessage, `there is no message ${formatMessageId(targetId)} in ${group}`);
    const refusal = likeRefusal({ user: target.message.user, likes: target.likes }, user, like);
    if (refusal) throw rpcError(...likeErrors[refusal]);
    return this.confirm({ op: like ? 'like' : 'unlike', user, group, message: targetId, ...rid(how) }, session, how.wait);
  }

  /**
   * Messages from .. from+count-1 (1-based) of `group`, or of the session's
   * group: a read, nothing is broadcast. With `after` (the highest timestamp
   * the client has seen, its own writes included) it first waits, up to
   * readWaitMs, until this server holds every message up to it, and says
   * whether it does (read-your-writes on a server that may lag behind).
   */
  async history(session: Session, params: HistoryParams): Promise<GroupView> {
    const name = params.group ?? requireGroup(session);
    const where = [params.from, params.since, params.before].filter((p) => p !== undefined).length;
    if (where > 1) throw rpcError(RpcErrors.invalidParams, 'invalid history: give at most one of from, since and before');
    if (params.after === undefined) return this.page(name, params);
    const complete = await this.holdAllUpTo(params.after);
    return { ...this.page(name, params), complete };
  }

  private async holdAllUpTo(after: number): Promise<boolean> {
    const deadline = performance.now() + readWaitMs;
    while (this.port.holdsAllUpTo() < after) {
      if (performance.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 10));
    }
    return true;
  }

  /** A page by place (from), or by message id (since: the messages after it; before: those just before it), which stays right when a heal moves places. */
  private page(name: string, { from, since, before, count = maxHistoryPage }: HistoryParams): GroupView {
    const current = this.currentGroup(name);
    if (!current) throw rpcError(RpcErrors.noSuchGroup, `there is no group ${name} (groups lists them)`);
    const placeOf = (id: MessageId) => {
      const found = findMessage(current, id, this.port.history);
      if (!found) throw rpcError(RpcErrors.unknownMessage, `there is no message ${formatMessageId(id)} in ${name}`);
      return found.n;
    };
    const start = since !== undefined ? placeOf(since) : before !== undefined ? Math.max(0, placeOf(before) - 1 - count) : (from ?? 1) - 1;
    const end = before !== undefined ? placeOf(before) - 1 : start + count;
    return this.describe(name, messageRange(current, start, end, this.port.history));
  }

  /** Every group of the shown state, by name. */
  groups(): { groups: GroupSummary[] } {
    const names = Object.keys(this.port.shown().groups).sort();
    return { groups: names.map((name) => ({ group: name, total: messageCount(this.currentGroup(name)), participants: this.participants(name) })) };
  }

  view(): ViewResult {
    return {
      server: this.port.server,
      view: this.port.view().map((id) => {
        const s = this.config.servers[id - 1];
        return { id, host: s.host, udpPort: s.udpPort, clientPort: s.clientPort };
      }),
    };
  }

  /** Sessions are gone: their users leave. */
  async closeSession(session: Session): Promise<void> {
    if (session.group === undefined) return;
    session.group = undefined;
    await this.submit({ op: 'leave', session: session.id }, session).catch(() => undefined);
  }

  /** The group as the shown state has it now: what a push's changes are computed against next time. */
  groupState(name: string): Group | undefined {
    return this.currentGroup(name);
  }

  /** What changed in group `name` since `base` (the group a session was last shown), as a push carries it. */
  changesSince(name: string, base: Group | undefined): GroupChanges {
    const current = this.currentGroup(name);
    const total = messageCount(current);
    if (!current) return { from: 1, messages: [], likes: [] };
    const from = base ? firstDifference(base, current, this.port.history) : 0;
    const likes = base ? likesChanged(base, current, from).map((n) => messageRange(current, n, n + 1, this.port.history)[0]) : [];
    const messages = total - from <= maxHistoryPage ? this.views(messageRange(current, from, total, this.port.history)) : undefined;
    return { from: from + 1, ...(messages ? { messages } : {}), likes: likes.map(({ n, message, likes: likedBy }) => ({ n, id: formatMessageId(message), likedBy: [...likedBy] })) };
  }

  /** The group with its last `count` messages (after a join, and pushed on every change). */
  groupView(name: string, count: number): GroupView {
    return this.describe(name, lastMessages(this.currentGroup(name), count, this.port.history));
  }

  private describe(name: string, messages: readonly ShownMessage[]): GroupView {
    return { group: name, participants: this.participants(name), total: messageCount(this.currentGroup(name)), messages: this.views(messages) };
  }

  private views(messages: readonly ShownMessage[]): MessageView[] {
    const stableTs = this.port.stableTs();
    return messages.map(({ n, message: m, likes }) => ({ n, id: formatMessageId(m), user: m.user, text: m.text, likes: likes.length, likedBy: [...likes], stable: m.ts <= stableTs }));
  }

  /** Users joined through servers in this server's current view. */
  private participants(name: string): string[] {
    const view = this.port.view();
    const users = new Set<string>();
    for (const member of Object.values(this.currentGroup(name)?.members ?? {})) if (view.includes(member.server)) users.add(member.user);
    return [...users].sort();
  }

  private currentGroup(name: string): Group | undefined {
    return this.port.shown().groups[name];
  }

  /**
   * The client saw timestamp `after` (its causal token): the session's
   * operations from now on are ordered after it, so a client that moves to
   * another server never sees its new messages ordered before its earlier
   * ones. A token further ahead than any clock could be is refused: it would
   * push every server's clock there.
   */
  observe(session: Session, after: number): void {
    if (after > this.port.clock() + maxCausalLead) {
      throw rpcError(RpcErrors.invalidParams, `invalid after: ${after} is more than ${maxCausalLead} ahead of this server's clock (${this.port.clock()}); send the highest timestamp you have seen`);
    }
    session.after = Math.max(session.after ?? 0, after);
  }

  /**
   * A retry of a request this server already knows (the state remembers
   * each user's recent request ids): the original's answer, nothing new
   * broadcast. One it does not know yet is broadcast again; if the original
   * reaches the order first, the retry has no effect there (wait "stable"
   * then says refused, duplicate-request).
   */
  private repeated(user: string, requestId: string | undefined): Confirmation | undefined {
    if (requestId === undefined) return undefined;
    const original = originalRequest(this.port.shown(), user, requestId);
    return original && this.originalAnswer(original);
  }

  /** A retry's answer: the original operation's id and, once that is stable, its outcome. */
  private originalAnswer(original: OriginalRequest): Confirmation {
    const tentative = Number(original.id.split('.')[0]) > this.port.stableTs();
    if (tentative) return { id: original.id, tentative, repeated: true };
    return { id: original.id, tentative, repeated: true, ...(original.refused === undefined ? { outcome: 'applied' } : { outcome: 'refused', rule: original.refused }) };
  }

  /**
   * Submit and answer: at once when durable here (tentative: its place in
   * the order may still change), or with wait "stable" once it is final,
   * with its outcome there: applied, or refused by the rule it broke (a like
   * of a message that another server's like reached first, say).
   */
  private async confirm(op: ChatOp, session: Session, wait: 'stable' | undefined): Promise<Confirmation> {
    if (wait === undefined) return this.confirmation(await this.submit(op, session));
    let outcome: Promise<OperationRefusal | undefined> | undefined;
    const m = await this.submit(op, session, (sequenced) => (outcome = this.stableOutcome(sequenced)));
    const refusal = await outcome!;
    // A retry that found its original ahead of it in the order: the original's answer.
    const original = refusal === 'duplicate-request' && op.op !== 'join' && op.op !== 'leave' && op.rid !== undefined ? originalRequest(this.port.shown(), op.user, op.rid) : undefined;
    if (original) return this.originalAnswer(original);
    return { id: formatMessageId(m), tentative: false, ...(refusal === undefined ? { outcome: 'applied' } : { outcome: 'refused', rule: refusal }) };
  }

  private confirmation(m: Message): Confirmation {
    return { id: formatMessageId(m), tentative: m.ts > this.port.stableTs() };
  }

  /** Registered as soon as the operation is sequenced, before anything can make it stable. */
  private stableOutcome(m: Message): Promise<OperationRefusal | undefined> {
    return new Promise((resolve, reject) => {
      this.stableWaits.add(reject);
      this.port.whenStable(m, (refusal) => {
        this.stableWaits.delete(reject);
        resolve(refusal);
      });
    });
  }

  /** A clean stop: operations still waiting to become stable are answered 4008 (each is durable here and will take its place). */
  abandonStableWaits(): void {
    const error = rpcError(RpcErrors.unavailable, 'the server is shutting down before the operation became stable; it is durable here and will take its place in the order');
    for (const reject of this.stableWaits) reject(error);
    this.stableWaits.clear();
  }

  /** Submit a session's operation (ordered after its causal token); resolves once it is durable here, or throws the JSON-RPC error the client sees. */
  private submit(op: ChatOp, session: Session, onSequenced?: (m: Message) => void): Promise<Message> {
    const submitted = new Promise<Message>((resolve, refused) => {
      const confirmed = (m: Message) => {
        onSequenced?.(m);
        resolve(m);
      };
      this.port.submit(op, { confirmed, refused }, session.after);
    });
    return submitted.catch((err: unknown) => {
      if (err instanceof SubmitRefused && err.reason === 'busy') throw rpcError(RpcErrors.busy, err.message);
      if (err instanceof SubmitRefused && err.reason === 'storage') throw rpcError(RpcErrors.storageFailed, `${err.message}; connect to another server`);
      throw rpcError(RpcErrors.unavailable, `the server could not accept the operation: ${(err as Error).message}`);
    });
  }
}

function requireUser(session: Session): string {
  if (session.user === undefined) throw rpcError(RpcErrors.noUser, 'no user name yet: call user first');
  return session.user;
}

function requireGroup(session: Session): string {
  if (session.group === undefined) throw rpcError(RpcErrors.noGroup, 'not in a group: call join first');
  return session.group;
}
