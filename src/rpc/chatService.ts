/**
 * What a client session can do, checked against the server's shown state
 * before anything is broadcast, so that what is broadcast is always applied
 * the same way by every daemon. Parameters arrive checked against their
 * schemas (params.ts); the chat is reached only through its port.
 */
import { formatMessageId, parseMessageId, type Message, type MessageId } from '../broadcast/types.js';
import type { ChatOp, LikeOp } from '../chat/operations.js';
import { originalRequest, requestOf, type OriginalRequest } from '../chat/requests.js';
import type { OperationRefusal } from '../chat/rules.js';
import type { ChatPort } from '../server/chatPort.js';
import type { ClusterConfig } from '../config/clusterConfig.js';
import { SubmitRefused } from '../node/node.js';
import { RpcErrors, recentMessages, type Confirmation, type GroupView } from './protocol.js';
import { rpcError } from './errors.js';
import { GroupReader, type HistoryParams } from './groupReader.js';

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

/** How far ahead of this server's clock a causal token may be (a partition lets clocks drift apart by about the messages sent meanwhile). */
const maxCausalLead = 1_000_000_000;

/** The errors a refusal the judge gives before broadcasting is answered with (a duplicate request is answered as a repeat before it is judged). */
const refusalErrors: Record<Exclude<OperationRefusal, 'duplicate-request' | 'not-an-operation'>, (op: LikeOp) => [number, string]> = {
  'message-unknown': (op) => [RpcErrors.unknownMessage, `there is no message ${formatMessageId(op.message)} in ${op.group}`],
  'own-message': () => [RpcErrors.ownMessage, 'you cannot like your own message'],
  'already-liked': () => [RpcErrors.alreadyLiked, 'you already like this message'],
  'not-liked': () => [RpcErrors.notLiked, 'you have not liked this message'],
};

export class ChatService {
  /** Answers waiting for their operation to become stable (wait "stable"): failed if the server stops first. */
  private readonly stableWaits = new Set<(error: Error) => void>();

  /** What clients read (pages, groups, pushes' changes): reads broadcast nothing. */
  readonly reader: GroupReader;

  constructor(
    readonly port: ChatPort,
    config: ClusterConfig,
  ) {
    this.reader = new GroupReader(port, config);
  }

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
    return this.reader.groupView(name, recentMessages);
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
    return this.mutate({ op: 'append', session: session.id, user, group, text, ...rid(how) }, session, how.wait);
  }

  async like(session: Session, message: MessageId, like: boolean, how: HowToAnswer = {}): Promise<Confirmation> {
    const user = requireUser(session);
    const group = requireGroup(session);
    return this.mutate({ op: like ? 'like' : 'unlike', user, group, message, ...rid(how) }, session, how.wait);
  }

  /**
   * A mutating request: a retry of a request this server knows is answered
   * as the original was; else the judge is asked first, so that a client
   * hears of a rule its operation breaks now rather than once it is ordered.
   */
  private mutate(op: ChatOp, session: Session, wait: 'stable' | undefined): Promise<Confirmation> {
    const repeated = this.repeated(op);
    if (repeated) return Promise.resolve(repeated);
    const { refusal } = this.port.judge(op);
    if (refusal && refusal !== 'duplicate-request' && refusal !== 'not-an-operation' && (op.op === 'like' || op.op === 'unlike')) throw rpcError(...refusalErrors[refusal](op));
    return this.confirm(op, session, wait);
  }

  /** A page of `group`'s history, or of the session's group (a read: nothing is broadcast). */
  history(session: Session, params: HistoryParams): Promise<GroupView> {
    return this.reader.history(params.group ?? requireGroup(session), params);
  }

  /** Sessions are gone: their users leave. */
  async closeSession(session: Session): Promise<void> {
    if (session.group === undefined) return;
    session.group = undefined;
    await this.submit({ op: 'leave', session: session.id }, session).catch(() => undefined);
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
  private repeated(op: ChatOp): Confirmation | undefined {
    const request = requestOf(op);
    const original = request && originalRequest(this.port.shown().requests, request);
    return original && this.originalAnswer(original);
  }

  /** A retry's answer: the original operation's id and, once that is stable, its outcome. */
  private originalAnswer(original: OriginalRequest): Confirmation {
    const tentative = (parseMessageId(original.id)?.ts ?? Infinity) > this.port.stableTs();
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
    const request = refusal === 'duplicate-request' ? requestOf(op) : undefined;
    const original = request && originalRequest(this.port.shown().requests, request);
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
