/**
 * What a client session can do, checked against the server's shown state
 * before anything is broadcast, so that what is broadcast is always applied
 * the same way by every daemon. Parameters arrive checked against their
 * schemas (params.ts); the chat is reached only through its port.
 */
import { formatMessageId, parseMessageId, type Message, type MessageId } from '../broadcast/types.js';
import type { ChatOp, LikeOp } from '../chat/operations.js';
import { acknowledgedBy, isDone, openRequests, originalRequest, parseStreamId, requestOf, type OriginalRequest, type Request } from '../chat/requests.js';
import type { OperationRefusal } from '../chat/rules.js';
import type { ChatPort } from '../server/chatPort.js';
import type { ClusterConfig } from '../config/clusterConfig.js';
import { SubmitRefused } from '../node/node.js';
import { defaultMaxOpenRequestsPerUser, RpcErrors, recentMessages, type Confirmation, type GroupSnapshot } from './protocol.js';
import { rpcError } from './errors.js';
import type { RpcTimers } from './timers.js';
import { GroupReader, type HistoryParams } from './groupReader.js';

/** How a client wants a mutating request answered: waiting for its stable outcome; its request id for retries, and which of its stream's answers it holds. */
export interface HowToAnswer {
  readonly wait?: 'stable';
  readonly requestId?: string;
  readonly doneBelow?: number;
}

/** The request fields an operation carries. */
function rid(how: HowToAnswer): { rid?: string; done?: number } {
  if (how.requestId === undefined && how.doneBelow !== undefined) throw rpcError(RpcErrors.invalidParams, 'invalid doneBelow: it goes with a request id "<stream>:<n>"');
  if (how.requestId === undefined) return {};
  return how.doneBelow === undefined ? { rid: how.requestId } : { rid: how.requestId, done: how.doneBelow };
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
    timers: RpcTimers,
    /** Stream requests one user may have open (RpcLimits.maxOpenRequestsPerUser). */
    private readonly maxOpenRequests = defaultMaxOpenRequestsPerUser,
  ) {
    this.reader = new GroupReader(port, config, timers);
  }

  setUser(session: Session, name: string): { user: string } {
    if (session.group !== undefined && session.user !== name) {
      throw rpcError(RpcErrors.renameInGroup, 'the user name cannot change while in a group: call leave first');
    }
    session.user = name;
    return { user: name };
  }

  async join(session: Session, name: string): Promise<GroupSnapshot> {
    const user = requireUser(session);
    await this.changeGroup(session, name, () => this.submit({ op: 'join', session: session.id, user, group: name }, session));
    return this.reader.groupSnapshot(name, recentMessages);
  }

  async leave(session: Session): Promise<Confirmation> {
    if (session.group === undefined) throw rpcError(RpcErrors.noGroup, 'not in a group');
    return this.changeGroup(session, undefined, () => this.answerWhenDurable({ op: 'leave', session: session.id }, session));
  }

  /**
   * A join or a leave changes the session's group in the order the requests
   * came, not in the order their operations became durable: a request sent
   * after it (an append, another join or leave) sees the group it set,
   * whichever answer is ready first. If its operation is refused, the group
   * goes back to what it was, unless a later request changed it again.
   */
  private async changeGroup<T>(session: Session, group: string | undefined, submit: () => Promise<T>): Promise<T> {
    const previous = session.group;
    session.group = group;
    try {
      return await submit();
    } catch (err) {
      if (session.group === group) session.group = previous;
      throw err;
    }
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
  private async mutate(op: ChatOp, session: Session, wait: 'stable' | undefined): Promise<Confirmation> {
    const request = requestOf(op);
    if (request) this.checkRequest(request);
    const repeated = await this.repeated(op, wait);
    if (repeated) return repeated;
    // Only a like's rules can refuse it before it is ordered (reading the shown state costs an application of the tentative suffix: appends skip it).
    if (op.op === 'like' || op.op === 'unlike') {
      const { refusal } = this.port.judge(op);
      if (refusal && refusal !== 'duplicate-request' && refusal !== 'not-an-operation') throw rpcError(...refusalErrors[refusal](op));
    }
    return this.confirm(op, session, wait);
  }

  /** A page of `group`'s history, or of the session's group (a read: nothing is broadcast). */
  history(session: Session, params: HistoryParams): Promise<GroupSnapshot> {
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
   * A stream request the client already said it holds the answer for is not
   * answered again; a new one past the user's bound on open requests waits
   * until the client acknowledges some.
   */
  private checkRequest(request: Request): void {
    const stream = parseStreamId(request.rid);
    if (request.doneBelow !== undefined && !stream) throw rpcError(RpcErrors.invalidParams, `invalid doneBelow: it goes with a request id "<stream>:<n>", not ${JSON.stringify(request.rid)}`);
    if (!stream) return;
    const { requests } = this.port.shown();
    if (isDone(requests, request)) throw rpcError(RpcErrors.requestDone, `request ${request.rid}: the client said it holds its answer (doneBelow); it is not applied again`);
    if (originalRequest(requests, request)) return;
    // Counting what this request acknowledges costs a walk of the stream: only when the bound is reached.
    const open = openRequests(requests, request.user);
    if (open < this.maxOpenRequests || open - acknowledgedBy(requests, request) < this.maxOpenRequests) return;
    throw rpcError(RpcErrors.tooManyOpenRequests, `too many open requests: ${request.user} has ${this.maxOpenRequests} requests whose answers were not acknowledged; send doneBelow with the next request once answers arrive`);
  }

  /**
   * A retry of a request this server already knows (the state remembers
   * each user's recent request ids): the original's answer, nothing new
   * broadcast. One it does not know yet is broadcast again; if the original
   * reaches the order first, the retry has no effect there.
   *
   * While the copy it knows is tentative, another copy (sent through a
   * server cut off from this one) may still land before it: a tentative
   * answer names the copy first now, and with wait "stable" the answer waits
   * until that copy is final, then names the copy first in the final order.
   */
  private async repeated(op: ChatOp, wait: 'stable' | undefined): Promise<Confirmation | undefined> {
    const request = requestOf(op);
    const original = request && originalRequest(this.port.shown().requests, request);
    if (!request || !original) return undefined;
    if (wait === undefined || !this.isTentative(original)) return this.originalAnswer(original);
    await this.stablePast(parseMessageId(original.id)!.ts);
    return this.originalAnswer(originalRequest(this.port.shown().requests, request) ?? original);
  }

  private isTentative(original: OriginalRequest): boolean {
    return (parseMessageId(original.id)?.ts ?? Infinity) > this.port.stableTs();
  }

  /** Resolves once the stable point has reached `ts` (fails if the server stops first). */
  private stablePast(ts: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const stop = () => {
        unsubscribe();
        this.stableWaits.delete(fail);
      };
      const fail = (error: Error) => {
        stop();
        reject(error);
      };
      const unsubscribe = this.port.onChange(() => {
        if (this.port.stableTs() < ts) return;
        stop();
        resolve();
      });
      this.stableWaits.add(fail);
    });
  }

  /** A retry's answer: the original operation's id and, once that is stable, its outcome. */
  private originalAnswer(original: OriginalRequest): Confirmation {
    const tentative = this.isTentative(original);
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
    if (wait === undefined) return this.answerWhenDurable(op, session);
    let outcome: Promise<OperationRefusal | undefined> | undefined;
    const m = await this.submit(op, session, (sequenced) => (outcome = this.stableOutcome(sequenced)));
    const refusal = await outcome!;
    // A retry that found its original ahead of it in the order: the original's answer.
    const request = refusal === 'duplicate-request' ? requestOf(op) : undefined;
    const original = request && originalRequest(this.port.shown().requests, request);
    if (original) return this.originalAnswer(original);
    return { id: formatMessageId(m), tentative: false, ...(refusal === undefined ? { outcome: 'applied' } : { outcome: 'refused', rule: refusal }) };
  }

  /**
   * Submit and answer once durable here, tentative as the shown state had
   * it then. Not later: by the time the answer is sent, the step that made
   * the operation durable may have made it final too, and final as a
   * refused copy of a request another server took first, which an answer
   * without an outcome must never claim to be.
   */
  private async answerWhenDurable(op: ChatOp, session: Session): Promise<Confirmation> {
    let tentative = true;
    const m = await this.submit(op, session, (durable) => (tentative = durable.ts > this.port.stableTs()));
    return { id: formatMessageId(m), tentative };
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
