/**
 * The simulator's clients: each a session of the client library
 * (client/session.ts) talking to a server's RPC endpoint over a client link,
 * as the terminal client talks to a daemon. So request-id replays after a
 * failover, `wait: "stable"` outcomes and push diffs run in every seed.
 *
 * What the clients were told is recorded for the final checks: every answer
 * (the message it names must be in the final order, carrying that request;
 * a final answer must name the first copy there, with its outcome), and
 * every message shown as stable (it must stay at its place). A client
 * error no correct server gives (an invalid parameter, a request refused
 * as done, an internal error) fails the run.
 */
import { parseMessageId, type Message } from '../broadcast/types.js';
import type { OperationRefusal } from '../chat/rules.js';
import { operationOf } from '../chat/operations.js';
import { requestOf } from '../chat/requests.js';
import { ClientSession, describeMutation, SessionError } from '../client/session.js';
import type { Confirmation } from '../rpc/protocol.js';
import type { SimCluster } from './cluster.js';

export const simGroups = ['lobby', 'dev', 'ops'];

/** Messages each client mirrors: more than a join shows, so joins read a page too. */
const mirrorMessages = 25;

/**
 * Error codes a correct server may answer a simulated client with: lost or
 * no connection (0), no user or group yet (a connect cut short), a like's
 * rules against a stale mirror, busy, shutting down, an unknown group.
 */
const expectedErrors: ReadonlySet<number> = new Set([0, 4001, 4002, 4003, 4004, 4005, 4006, 4007, 4008, 4013]);

interface RecordedAnswer {
  readonly user: string;
  readonly rid: string;
  readonly answer: Confirmation;
}

/** What the clients were told, and the first thing no correct server would have told them. */
export class ClientRecords {
  readonly answers: RecordedAnswer[] = [];
  /** Every message a client was shown as stable, by place: "<group>#<n>" -> its id, and to whom it was shown first. */
  readonly shownStable = new Map<string, { id: string; to: string }>();
  failure: string | undefined;
  /** Requests the clients made: joins, leaves, appends, likes (and, after the final heal, resends). */
  operations = 0;

  fail(why: string): void {
    this.failure ??= why;
  }

  /** What a client was shown: a message shown stable at a place is at that place for every client, for good. */
  shown(to: string, group: string, messages: readonly { n: number; id: string; stable: boolean }[]): void {
    for (const m of messages) {
      if (!m.stable) continue;
      const key = `${group}#${m.n}`;
      const before = this.shownStable.get(key);
      if (before === undefined) this.shownStable.set(key, { id: m.id, to });
      else if (before.id !== m.id) this.fail(`message ${m.id} shown to ${to} as stable at place ${m.n} of ${group}, where ${before.id} was shown to ${before.to} as stable before`);
    }
  }

  /**
   * Each answer against the final order and what the reducer decided there:
   * the message it names carries the request; a final answer names the
   * request's first copy, with that copy's outcome.
   */
  checkAnswers(order: readonly Message[], refusals: readonly (OperationRefusal | undefined)[]): string | undefined {
    const place = new Map<string, number>();
    const firstCopy = new Map<string, number>();
    order.forEach((m, i) => {
      place.set(`${m.ts}.${m.sender}`, i);
      const op = operationOf(m);
      const request = op && requestOf(op);
      if (request && !firstCopy.has(`${request.user} ${request.rid}`)) firstCopy.set(`${request.user} ${request.rid}`, i);
    });
    for (const { user, rid, answer } of this.answers) {
      const id = parseMessageId(answer.id);
      const i = id && place.get(`${id.ts}.${id.sender}`);
      if (i === undefined) return `${user}'s request ${rid} was answered with ${answer.id}, which is not in the final order`;
      const op = operationOf(order[i]);
      const request = op && requestOf(op);
      if (request?.user !== user || request.rid !== rid) return `${user}'s request ${rid} was answered with ${answer.id}, which carries another operation`;
      if (answer.tentative) continue;
      const first = firstCopy.get(`${user} ${rid}`)!;
      if (first !== i) return `${user}'s request ${rid} was answered as final with ${answer.id}, but its first copy in the final order is ${order[first].ts}.${order[first].sender}`;
      const refusal = refusals[i];
      const told = answer.outcome === 'applied' ? undefined : answer.rule;
      if (told !== refusal) return `${user}'s request ${rid} was answered as final with outcome ${answer.outcome}${answer.rule ? ` (${answer.rule})` : ''}, but in the final order it ${refusal ? `was refused (${refusal})` : 'took effect'}`;
    }
    return undefined;
  }
}

export class SimClient {
  readonly session: ClientSession;
  /** Calls made and not yet answered (or failed). */
  inFlight = 0;
  /** Connecting: no other action until it is done. */
  private connecting = false;
  private plainRequests = 0;

  constructor(
    readonly name: string,
    private readonly cluster: SimCluster,
    private readonly records: ClientRecords,
  ) {
    const group = cluster.random.pick(simGroups);
    this.session = new ClientSession(
      (server, handlers) => cluster.openChannel(Number(server), handlers),
      {
        changed: () => {
          if (this.session.mirror.group) records.shown(`${name} at server ${this.session.server}`, this.session.mirror.group, this.session.mirror.messages);
        },
        lost: (server, reason) => cluster.log(`client ${name} lost server ${server}: ${reason ?? 'closed'}`),
        resent: (mutation, answer) => this.answered(mutation.params.requestId!, answer),
        resendRefused: (mutation, error) => this.refused(`resend of ${describeMutation(mutation)} (${mutation.params.requestId})`, error),
      },
      { user: name, group, mirrorMessages, stream: `${name}s` },
    );
  }

  /** Connected, nothing in flight, nothing waiting to be resent. */
  get idle(): boolean {
    return this.busyWith() === undefined;
  }

  /** What the client still waits for ("connecting, 2 requests unanswered"), or undefined. */
  busyWith(): string | undefined {
    const busy = [
      this.connecting ? 'connecting (resending what its last server never answered)' : '',
      this.inFlight > 0 ? `${this.inFlight} requests unanswered` : '',
      this.session.connected || this.connecting ? '' : 'not connected',
      this.session.waiting.length > 0 ? `${this.session.waiting.length} to resend` : '',
    ].filter((what) => what !== '');
    return busy.length === 0 ? undefined : busy.join(', ');
  }

  /** One random action, as a user at a terminal might take it. */
  act(): void {
    const random = this.cluster.random;
    const session = this.session;
    if (this.connecting) return;
    if (!session.connected) return this.connect();
    if (session.group === undefined) return this.track('join', session.join(random.pick(simGroups)));
    const roll = random.next();
    if (roll < 0.5) return this.append();
    if (roll < 0.78) return this.like();
    if (roll < 0.84) return this.track('join', session.join(random.pick(simGroups)));
    if (roll < 0.88) return this.track('leave', session.leave());
    // Move to another server with requests in flight: those it did not answer are resent there.
    this.connect();
  }

  /** After the final heal: a client that lost its server connects again, one that still holds unanswered requests resends them. */
  settle(): void {
    if (this.connecting || this.inFlight > 0) return;
    if (!this.session.connected) return this.connect();
    if (this.session.waiting.length > 0) this.track('resend', this.session.resendUnanswered());
  }

  private connect(): void {
    const up = this.cluster.servers.filter((s) => s.up).map((s) => s.id);
    if (up.length === 0) return;
    const server = this.cluster.random.pick(up);
    this.connecting = true;
    this.session
      .connect(String(server))
      .then(() => this.cluster.log(`client ${this.name} connected to ${server}`))
      .catch((err: unknown) => this.refused(`connect to ${server}`, err))
      .finally(() => (this.connecting = false));
  }

  private append(): void {
    const random = this.cluster.random;
    // Now and then a plain request id (no stream): remembered within the user's window, not by doneBelow.
    const rid = random.chance(0.1) ? `${this.name}-p${++this.plainRequests}` : this.session.nextRequestId();
    const wait = random.chance(0.3) ? ('stable' as const) : undefined;
    this.track(`append ${rid}`, this.session.append(`${this.name} ${rid}`, { requestId: rid, wait }), (answer) => this.answered(rid, answer));
  }

  /** Like a message of the mirror, or unlike one this user likes: never one of their own. */
  private like(): void {
    const random = this.cluster.random;
    const candidates = this.session.mirror.messages.filter((m) => m.user !== this.name);
    if (candidates.length === 0) return;
    const target = random.pick(candidates);
    const like = !target.likedBy.includes(this.name);
    const rid = this.session.nextRequestId();
    const wait = random.chance(0.3) ? ('stable' as const) : undefined;
    this.track(`${like ? 'like' : 'unlike'} ${rid}`, this.session.like(target.id, like, { requestId: rid, wait }), (answer) => this.answered(rid, answer));
  }

  private answered(rid: string, answer: Confirmation): void {
    this.records.answers.push({ user: this.name, rid, answer });
    const outcome = answer.outcome === undefined ? '' : ` (${answer.outcome}${answer.rule ? `: ${answer.rule}` : ''})`;
    this.cluster.log(`client ${this.name} at ${this.session.server}: ${rid} answered ${answer.id}${answer.tentative ? ' tentative' : ' final'}${outcome}${answer.repeated ? ', repeated' : ''}`);
  }

  private track<T>(what: string, call: Promise<T>, then?: (result: T) => void): void {
    this.records.operations++;
    this.inFlight++;
    call
      .then(then, (err: unknown) => this.refused(what, err))
      .finally(() => this.inFlight--);
  }

  private refused(what: string, err: unknown): void {
    if (err instanceof SessionError && expectedErrors.has(err.code)) return;
    const error = err as Error;
    this.records.fail(`client ${this.name}: ${what} failed with ${err instanceof SessionError ? `error ${err.code}` : error.name}: ${error.message}`);
  }
}
