/**
 * A client's session with a Chorus cluster: the one implementation of the
 * client side of the protocol (docs/rpc.md), under the terminal client, the
 * console's chat pane, tools/chaos and the bench's load client, over any
 * channel that carries JSON-RPC (ws in Node, the console's relay in a
 * browser, memory in the simulator).
 *
 * - Connection and failover: connect to a server, or to the first of a list
 *   that answers; a new server is a new session, so the user name and group
 *   are carried over.
 * - The causal token: the highest timestamp seen, sent as `after` with every
 *   operation, so that the session's operations stay in the order sent
 *   whichever server takes them.
 * - Request ids: each mutation carries one of this session's stream,
 *   "<stream>:<n>", and says which answers the session holds (`doneBelow`:
 *   every n below it), so that servers remember a request until then and no
 *   longer, however many are in flight. One whose connection was lost before
 *   its answer is resent, with the same id, after the next connect: applied
 *   once whether or not the lost server took it.
 * - The group mirror: the joined group's history (a window of it), kept up
 *   to date from pushes alone, reading a page when a push is too large to
 *   carry the messages.
 */
import { parseMessageId } from '../broadcast/types.js';
import type { ChatMethods, Confirmation, GroupPush, GroupSummary, GroupSnapshot, MessageEntry, ViewResult } from '../rpc/protocol.js';

type HistoryParams = NonNullable<ChatMethods['history']['params']>;

/** What a session needs of a connection to one server. */
export interface RpcChannel {
  readonly connected: boolean;
  /** Resolves with the result; rejects with a SessionError (code 0: not connected, or lost before the answer). */
  call(method: string, params: object): Promise<unknown>;
  close(): void;
}

export interface ChannelHandlers {
  /** A notification from the server (a "group" push). */
  push(method: string, params: unknown): void;
  /** The connection closed by itself (not by close()). */
  closed(reason: string | undefined): void;
}

/** Opens a channel to a server, named as the session's user named it (an address, a server number). */
export type ChannelOpener = (server: string, handlers: ChannelHandlers) => Promise<RpcChannel>;

/** An error answer (code and message as the server sent them), or code 0: no connection, or lost before the answer. */
export class SessionError extends Error {
  constructor(
    readonly code: number,
    message: string,
    /** The connection was lost before the answer, and the mutation is kept: the next connect resends it. */
    readonly resendsOnConnect = false,
  ) {
    super(message);
    this.name = 'SessionError';
  }
}

export interface SessionEvents {
  /** Connected to `server`, before the user and group are carried over. */
  connected?(server: string): void;
  /** The mirrored group changed (a join, a push, a page read). */
  changed?(): void;
  /** The connection to `server` was lost (not closed by the session). */
  lost?(server: string, reason: string | undefined): void;
  /** A mutation the lost server never answered was resent and answered. */
  resent?(mutation: Mutation, answer: Confirmation): void;
  /** ... or resent and refused by a rule here (its fate on the lost server is unknown). */
  resendRefused?(mutation: Mutation, error: SessionError): void;
  /** Every push, as it came (before the mirror follows it). */
  pushed?(push: GroupPush): void;
}

/** Refusals that say "not now" (busy, shutting down, a failed disk, the rate limit): a resend is tried again later. */
const tryLater: readonly number[] = [4007, 4008, 4009, 4011];

export interface SessionOptions {
  /** The user name and group the session takes to the first server it connects to (as to every later one). */
  readonly user?: string;
  readonly group?: string;
  /** Messages the mirror keeps, the last ones of the group (the join's 10 by default; a page reads up to 500). */
  readonly mirrorMessages?: number;
  /**
   * The bare write path, as the bench measures it (and as a program that
   * needs neither sends it): mutations carry no request id (nor are they
   * resent) and no causal token.
   */
  readonly bare?: boolean;
  /** The session's request stream name (a random one by default; the simulator names its own, to stay deterministic). */
  readonly stream?: string;
}

/** How to send a mutation: wait for its stable outcome; its request id (the session's own by default). */
export interface HowToSend {
  readonly wait?: 'stable';
  readonly requestId?: string;
}

/** A mutation as sent, kept to be resent as it was (its request id, and whether it waits for its stable outcome). */
export type Mutation = ({ readonly method: 'append'; readonly params: { readonly text: string; readonly requestId?: string } } | { readonly method: 'like' | 'unlike'; readonly params: { readonly id: string; readonly requestId?: string } }) & { readonly wait?: 'stable' };

/** The fields of a mutation that `how` sets. */
const requestIdOf = (how: HowToSend) => (how.requestId ? { requestId: how.requestId } : {});
const waitOf = (how: HowToSend) => (how.wait ? { wait: how.wait } : {});

/** A mutation as people read it: `"text"` for an append, `like of <id>` for a like. */
export function describeMutation(mutation: Mutation): string {
  return mutation.method === 'append' ? `"${mutation.params.text}"` : `${mutation.method} of ${mutation.params.id}`;
}

/** The timestamp of a message id "<ts>.<sender>" (0 if it is not one). */
export function timestampOf(id: string): number {
  return parseMessageId(id)?.ts ?? 0;
}

/** A stream name no other session is likely to pick: 16 random hex digits. */
function randomStreamName(): string {
  return Array.from(globalThis.crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Messages in one page of history (the server's limit). */
const pageMessages = 500;

export class ClientSession {
  user: string | undefined;
  group: string | undefined;
  /** The server this session is connected to, as it was named. */
  server: string | undefined;
  readonly mirror: GroupMirror;
  /** The highest message timestamp this session has seen. */
  seenTs = 0;
  private channel: RpcChannel | undefined;
  /** Mutations whose connection was lost before their answer: resent after the next connect. */
  private unanswered: Mutation[] = [];
  private readonly mirrorMessages: number;
  private readonly bare: boolean;
  /** This session's request stream: its ids are "<stream>:<n>", n = 1, 2, ... */
  private readonly stream: string;
  private nextRequest = 1;
  /** Every request of the stream below this has its answer here; those answered above it. */
  private doneBelow = 1;
  private readonly answeredAbove = new Set<number>();
  /** Counts the mirror's resets (joins, leaves): a page read for an earlier mirror is dropped. */
  private mirrorResets = 0;

  constructor(
    private readonly open: ChannelOpener,
    private readonly events: SessionEvents = {},
    options: SessionOptions = {},
  ) {
    this.user = options.user;
    this.group = options.group;
    this.mirrorMessages = options.mirrorMessages ?? 10;
    this.mirror = new GroupMirror(this.mirrorMessages);
    this.bare = options.bare ?? false;
    this.stream = options.stream ?? randomStreamName();
  }

  get connected(): boolean {
    return this.channel?.connected ?? false;
  }

  /** The mutations whose connection was lost before their answer, waiting for the next server, oldest first. */
  get waiting(): readonly Mutation[] {
    return this.unanswered;
  }

  /** Connect to `server` (leaving the previous one): the user and group are carried over, then what the last server never answered is resent. */
  async connect(server: string): Promise<void> {
    const previous = this.channel;
    this.channel = undefined;
    previous?.close();
    const channel = await this.open(server, {
      push: (method, params) => {
        if (method === 'group' && this.channel === channel) this.onPush(params as GroupPush);
      },
      closed: (reason) => {
        if (this.channel !== channel) return;
        this.channel = undefined;
        this.events.lost?.(server, reason);
      },
    });
    this.channel = channel;
    this.server = server;
    this.events.connected?.(server);
    if (this.user !== undefined) await this.setUser(this.user);
    if (this.group !== undefined) await this.join(this.group);
    await this.resendUnanswered();
  }

  /** Connect to the first of `servers` that can be reached and takes the session over; the one connected to, or undefined. */
  async connectToFirst(servers: readonly string[]): Promise<string | undefined> {
    for (const server of servers) {
      try {
        await this.connect(server);
        return server;
      } catch {
        // Down or cut off: the next one.
      }
    }
    return undefined;
  }

  async setUser(name: string): Promise<string> {
    const { user } = (await this.call('user', { name })) as { user: string };
    this.user = user;
    return user;
  }

  /** Join a group: the mirror starts from the join's answer (and a page, for a mirror larger than it). */
  async join(group: string): Promise<GroupSnapshot> {
    if (this.user === undefined) throw new SessionError(0, 'set a user name first (u <name>)');
    const view = (await this.call('join', { group, ...this.causal() })) as GroupSnapshot;
    this.group = view.group;
    this.mirrorResets++;
    this.mirror.reset(view, this.mirrorMessages);
    this.sawAll(view.messages);
    if (this.mirrorMessages > view.messages.length && view.total > view.messages.length) await this.readFrom(Math.max(1, view.total - this.mirrorMessages + 1));
    this.events.changed?.();
    return view;
  }

  async leave(): Promise<Confirmation> {
    if (this.group === undefined) throw new SessionError(0, 'join a group first (j <group>)');
    const answer = (await this.call('leave', this.causal())) as Confirmation;
    this.group = undefined;
    this.mirrorResets++;
    this.mirror.reset(undefined);
    this.events.changed?.();
    return answer;
  }

  /** Append to the group; `how.requestId` names the request (a new id by default). */
  async append(text: string, how: HowToSend = {}): Promise<Confirmation> {
    if (this.user === undefined) throw new SessionError(0, 'set a user name first (u <name>)');
    if (this.group === undefined) throw new SessionError(0, 'join a group first (j <group>)');
    return this.mutate({ method: 'append', params: { text, ...requestIdOf(how) }, ...waitOf(how) });
  }

  /** Like (or, with like = false, unlike) the message with this id. */
  async like(id: string, like: boolean, how: HowToSend = {}): Promise<Confirmation> {
    if (this.group === undefined) throw new SessionError(0, 'join a group first (j <group>)');
    return this.mutate({ method: like ? 'like' : 'unlike', params: { id, ...requestIdOf(how) }, ...waitOf(how) });
  }

  /** A page of a group's history (the session's group by default), read after everything this session saw. */
  async history(params: HistoryParams = {}): Promise<GroupSnapshot> {
    const page = (await this.call('history', { ...params, ...this.causal() })) as GroupSnapshot;
    this.sawAll(page.messages);
    return page;
  }

  /** The page of the mirrored group before the first message it holds. */
  async readEarlier(): Promise<void> {
    const first = this.mirror.first;
    if (first <= 1) return;
    const from = Math.max(1, first - pageMessages);
    const page = await this.history({ from, count: first - from });
    this.mirror.prepend(page.messages);
    this.events.changed?.();
  }

  async groups(): Promise<GroupSummary[]> {
    return ((await this.call('groups', {})) as { groups: GroupSummary[] }).groups;
  }

  view(): Promise<ViewResult> {
    return this.call('view', {}) as Promise<ViewResult>;
  }

  close(): void {
    const channel = this.channel;
    this.channel = undefined;
    channel?.close();
  }

  /** A new request id of this session's stream (for a caller that must know it before the call). */
  nextRequestId(): string {
    return `${this.stream}:${this.nextRequest++}`;
  }

  /**
   * Send a mutation (with a new request id of the stream unless it has one);
   * if the connection is lost before the answer, it is kept and resent as it
   * was (waiting for its stable outcome if it did) after the next connect.
   */
  private async mutate(unsent: Mutation): Promise<Confirmation> {
    const { wait } = unsent;
    const channel = this.requireChannel();
    // Object.assign rather than spreads: a spread followed by more fields cost V8 11 about 1 µs a field, per call.
    const mutation = unsent.params.requestId !== undefined || this.bare ? unsent : (Object.assign({}, unsent, { params: Object.assign({}, unsent.params, { requestId: this.nextRequestId() }) }) as Mutation);
    try {
      const params = Object.assign({}, mutation.params, this.bare ? {} : this.causal(), this.done(mutation), wait ? { wait } : {});
      const answer = (await channel.call(mutation.method, params)) as Confirmation;
      this.answered(mutation);
      this.saw(answer.id);
      return answer;
    } catch (err) {
      if (channel.connected || mutation.params.requestId === undefined) {
        this.answered(mutation);
        throw err;
      }
      this.unanswered.push(mutation);
      throw new SessionError(0, 'the connection was lost before the server answered; it is resent to the next server (applied once either way)', true);
    }
  }

  /** What the session holds answers for, sent with a request of its stream. */
  private done(mutation: Mutation): { doneBelow?: number } {
    const id = mutation.params.requestId;
    return id?.startsWith(`${this.stream}:`) && this.doneBelow > 1 ? { doneBelow: this.doneBelow } : {};
  }

  /** The answer to a request of the stream is here (a result or an error answer). */
  private answered(mutation: Mutation): void {
    const id = mutation.params.requestId;
    if (!id?.startsWith(`${this.stream}:`)) return;
    this.answeredAbove.add(Number(id.slice(this.stream.length + 1)));
    while (this.answeredAbove.delete(this.doneBelow)) this.doneBelow++;
  }

  /** Resend what a lost server never answered, oldest first; a refusal for now stops until the next connect or resend. */
  async resendUnanswered(): Promise<void> {
    while (this.unanswered.length > 0) {
      const mutation = this.unanswered.shift()!;
      try {
        this.events.resent?.(mutation, await this.mutate(mutation));
      } catch (err) {
        if (!(err instanceof SessionError) || !this.connected) throw err;
        if (tryLater.includes(err.code)) {
          this.unanswered.unshift(mutation);
          throw err;
        }
        this.events.resendRefused?.(mutation, err);
      }
    }
  }

  /** A push: the mirror follows it; a change too large to carry its messages is read a page. */
  private onPush(push: GroupPush): void {
    this.events.pushed?.(push);
    if (push.group !== this.group) return;
    this.sawAll(push.messages);
    const complete = this.mirror.apply(push);
    if (!complete) void this.readFrom(Math.max(push.changes.from, push.total - this.mirrorMessages + 1)).catch(() => undefined);
    this.events.changed?.();
  }

  /**
   * Read the mirrored group from place `from` on, naming the group (the
   * session may have sent another join meanwhile). A page that comes back
   * after the mirror was reset (another join, a leave, another server) is
   * dropped: it belongs to an earlier mirror.
   */
  private async readFrom(from: number): Promise<void> {
    const { group, mirrorResets } = this;
    if (group === undefined) return;
    for (let next = from; ; ) {
      const page = await this.history({ group, from: next, count: pageMessages });
      if (this.mirrorResets !== mirrorResets) return;
      this.mirror.replaceFrom(next, page);
      next += page.messages.length;
      if (page.messages.length === 0 || next > page.total) break;
    }
    this.events.changed?.();
  }

  private call(method: string, params: object): Promise<unknown> {
    return this.requireChannel().call(method, params);
  }

  private requireChannel(): RpcChannel {
    if (!this.channel?.connected) throw new SessionError(0, 'not connected: connect to a server first (c <id> or c <host:port>)');
    return this.channel;
  }

  private causal(): { after?: number } {
    return this.seenTs > 0 ? { after: this.seenTs } : {};
  }

  private saw(id: string): void {
    this.seenTs = Math.max(this.seenTs, timestampOf(id));
  }

  private sawAll(messages: readonly MessageEntry[]): void {
    for (const m of messages) this.saw(m.id);
  }
}

/**
 * A window of a group's history as the server has it: places first ..
 * first + messages.length - 1, the participants, and the total. Pushes
 * carry what changed since the previous push (the history from a place on,
 * likes changed before it, the stable point), so the window is kept exact
 * from pushes alone.
 */
export class GroupMirror {
  group: string | undefined;
  participants: readonly string[] = [];
  total = 0;
  messages: MessageEntry[] = [];

  /** At most `limit` messages are held, the last ones (a client that reads earlier pages raises it). */
  constructor(public limit = 10) {}

  /** The place of the first message held (total + 1 when none). */
  get first(): number {
    return this.messages[0]?.n ?? this.total + 1;
  }

  reset(view: GroupSnapshot | undefined, limit = this.limit): void {
    this.limit = limit;
    this.group = view?.group;
    this.participants = view?.participants ?? [];
    this.total = view?.total ?? 0;
    this.messages = [...(view?.messages ?? [])];
  }

  /** Apply a push; false when it did not carry the changed messages (read them with history). */
  apply(push: GroupPush): boolean {
    this.participants = push.participants;
    this.total = push.total;
    const { from, messages, likes } = push.changes;
    // A change too large to carry: a window no larger than the push's last messages is those.
    if (!messages && this.limit <= push.messages.length) {
      this.messages = push.messages.slice(-this.limit);
      return true;
    }
    const likedBy = new Map(likes.map((l) => [l.n, l.likedBy]));
    const kept = this.messages.filter((m) => m.n < from).map((m) => (likedBy.has(m.n) ? { ...m, likedBy: likedBy.get(m.n)!, likes: likedBy.get(m.n)!.length } : m));
    const first = this.messages[0]?.n ?? from;
    // Only the last `limit` of what the push carries can stay: a push of hundreds costs a window's worth.
    const added = (messages ?? []).slice(-this.limit).filter((m) => m.n >= first);
    this.messages = [...kept, ...added];
    this.trim();
    this.messages = this.messages.map((m) => (m.stable || timestampOf(m.id) > push.stableTs ? m : { ...m, stable: true }));
    return messages !== undefined;
  }

  /** Keep the last `limit` messages: a long session's mirror costs what it shows, not what it saw. */
  private trim(): void {
    if (this.messages.length > this.limit) this.messages = this.messages.slice(-this.limit);
  }

  /** A page read from place `from` replaces what the window held from there. */
  replaceFrom(from: number, page: GroupSnapshot): void {
    this.total = page.total;
    this.participants = page.participants;
    this.messages = [...this.messages.filter((m) => m.n < from), ...page.messages.filter((m) => m.n >= from)];
    this.trim();
  }

  /** Earlier messages, read by history, in front of the window. */
  prepend(messages: readonly MessageEntry[]): void {
    const first = this.first;
    const earlier = messages.filter((m) => m.n < first);
    this.limit += earlier.length;
    this.messages = [...earlier, ...this.messages];
  }

  /** The last `count` messages held. */
  last(count: number): MessageEntry[] {
    return this.messages.slice(-count);
  }
}
