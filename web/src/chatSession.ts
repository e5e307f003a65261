/**
 * The chat pane's session with one server, through the console's relay
 * (/chat/<id>): the terminal client's commands with the same rules and the
 * same errors, plus what a page needs: the group's history kept up to date
 * from pushes, tentative messages marked until stable. Mutations carry a
 * request id and the highest timestamp seen (`after`); those the lost server
 * never answered are resent, with the same id, to the next one.
 */
import type { Confirmation, GroupPush, GroupSummary, GroupView, MessageView, ViewResult } from '../../src/rpc/protocol.js';
import { chatPathPrefix } from '../../src/console/api.js';
import { RpcError, RpcSocket } from './rpcSocket.js';

/** Messages read when joining, and by each "earlier" click (the server's page size). */
export const pageSize = 500;
/** Lines kept in the pane's log. */
const maxLogLines = 30;

type Mutation = { method: 'append'; params: { text: string; requestId: string } } | { method: 'like' | 'unlike'; params: { id: string; requestId: string } };

export interface LogLine {
  readonly at: number;
  readonly text: string;
  readonly error: boolean;
}

export class ChatSession {
  server: number | undefined;
  connected = false;
  user: string | undefined;
  group: string | undefined;
  participants: readonly string[] = [];
  total = 0;
  /** A window of the group's history: places first..first+messages.length-1. */
  messages: MessageView[] = [];
  view: readonly number[] = [];
  groups: readonly GroupSummary[] = [];
  log: LogLine[] = [];
  private socket: RpcSocket | undefined;
  private unanswered: Mutation[] = [];
  private seenTs = 0;

  constructor(
    /** Called after every change, to redraw. */
    private readonly changed: () => void,
    /** Called when the server goes away (not when the user switches). */
    private readonly lost: (server: number, reason: string) => void,
  ) {}

  async connect(server: number): Promise<void> {
    const previous = this.socket;
    this.socket = undefined;
    previous?.close();
    this.connected = false;
    this.server = server;
    this.changed();
    const socket = await RpcSocket.connect(`${chatPathPrefix}${server}`, {
      notification: (method, params) => {
        if (method === 'group' && this.socket === socket) this.applyPush(params as GroupPush);
      },
      close: (_code, reason) => {
        if (this.socket !== socket) return;
        this.socket = undefined;
        this.connected = false;
        this.say(`lost server ${server}: ${reason || 'the connection closed'}`, true);
        this.lost(server, reason);
      },
    }).catch((err: Error) => {
      this.say(`cannot connect to server ${server}: ${err.message}`, true);
      throw err;
    });
    this.socket = socket;
    this.connected = true;
    this.say(`connected to server ${server}`);
    // A new server is a new session: carry the user name and group over, then resend what the last one never answered.
    if (this.user !== undefined) await this.run(() => this.setUser(this.user as string));
    if (this.group !== undefined) await this.run(() => this.join(this.group as string));
    await this.run(() => this.resendUnanswered());
    await this.run(() => this.readView());
  }

  /** Run a command; its error is shown as one line, never thrown. */
  async run(command: () => Promise<void>): Promise<void> {
    try {
      await command();
    } catch (err) {
      this.say(err instanceof Error ? err.message : String(err), true);
    }
  }

  async setUser(name: string): Promise<void> {
    const trimmed = name.trim();
    if (trimmed === '') throw new Error('usage: a user name');
    const result = await this.call<{ user: string }>('user', { name: trimmed });
    this.user = result.user;
    this.say(`user: ${result.user}`);
  }

  async join(group: string): Promise<void> {
    if (this.user === undefined) throw new Error('set a user name first (u <name>)');
    const view = await this.call<GroupView>('join', { group: group.trim(), ...this.causal() });
    this.group = view.group;
    this.participants = view.participants;
    this.total = view.total;
    this.messages = [];
    await this.readFrom(Math.max(1, view.total - pageSize + 1));
    this.say(`joined ${view.group}`);
  }

  async leave(): Promise<void> {
    if (this.group === undefined) throw new Error('join a group first (j <group>)');
    await this.call<Confirmation>('leave', this.causal());
    this.say(`left ${this.group}`);
    this.group = undefined;
    this.messages = [];
    this.participants = [];
    this.total = 0;
  }

  async append(text: string): Promise<void> {
    if (text.trim() === '') throw new Error('usage: a <text>');
    if (this.user === undefined) throw new Error('set a user name first (u <name>)');
    if (this.group === undefined) throw new Error('join a group first (j <group>)');
    await this.mutate({ method: 'append', params: { text, requestId: crypto.randomUUID() } });
  }

  async like(message: MessageView, like: boolean): Promise<void> {
    if (this.group === undefined) throw new Error('join a group first (j <group>)');
    await this.mutate({ method: like ? 'like' : 'unlike', params: { id: message.id, requestId: crypto.randomUUID() } });
    this.say(like ? `liked message ${message.n}` : `removed your like from message ${message.n}`);
  }

  /** The page of history before the first message shown. */
  async readEarlier(): Promise<void> {
    const first = this.messages[0]?.n ?? this.total + 1;
    if (first <= 1) return;
    const from = Math.max(1, first - pageSize);
    const page = await this.call<GroupView>('history', { from, count: first - from });
    this.messages = [...page.messages.filter((m) => m.n < first), ...this.messages];
    this.changed();
  }

  async readView(): Promise<void> {
    const result = await this.call<ViewResult>('view');
    this.view = result.view.map((s) => s.id);
    this.changed();
  }

  async listGroups(): Promise<void> {
    const result = await this.call<{ groups: GroupSummary[] }>('groups');
    this.groups = result.groups;
    if (result.groups.length === 0) this.say('no groups yet (join one to create it)');
    this.changed();
  }

  close(): void {
    const socket = this.socket;
    this.socket = undefined;
    socket?.close();
  }

  /**
   * Send a mutation with its request id; if the connection is lost before
   * the answer, keep it for the next server (applied once either way).
   */
  private async mutate(request: Mutation): Promise<void> {
    const socket = this.requireSocket();
    try {
      const result = await socket.call<Confirmation>(request.method, { ...request.params, ...this.causal() });
      this.saw(result.id);
    } catch (err) {
      if (socket.connected) throw err;
      this.unanswered.push(request);
      throw new Error('the connection was lost before the server answered; it is resent to the next server (applied once either way)', { cause: err });
    }
  }

  private async resendUnanswered(): Promise<void> {
    for (const request of this.unanswered.splice(0)) {
      await this.mutate(request);
      this.say(`resent ${request.method === 'append' ? `"${request.params.text}"` : `${request.method} of ${request.params.id}`}`);
    }
  }

  private async readFrom(from: number): Promise<void> {
    const page = await this.call<GroupView>('history', { from, count: pageSize, ...this.causal() });
    this.total = page.total;
    for (const m of page.messages) this.saw(m.id);
    this.messages = [...this.messages.filter((m) => m.n < from), ...page.messages];
    if (page.complete === false) this.say('this server has not yet received every message you have seen (a partition?); some may be missing until it has', true);
    this.changed();
  }

  /** A push: the history from `changes.from` on, likes changed before it, and the stable point. */
  private applyPush(push: GroupPush): void {
    if (push.group !== this.group) return;
    this.participants = push.participants;
    this.total = push.total;
    const { from, messages, likes } = push.changes;
    const byPlace = new Map(likes.map((l) => [l.n, l.likedBy]));
    const kept = this.messages.filter((m) => m.n < from).map((m) => (byPlace.has(m.n) ? { ...m, likedBy: byPlace.get(m.n) ?? [], likes: byPlace.get(m.n)?.length ?? 0 } : m));
    if (messages) {
      const first = this.messages[0]?.n ?? from;
      this.messages = [...kept, ...messages.filter((m) => m.n >= first)];
    } else {
      this.messages = kept;
      void this.run(() => this.readFrom(Math.max(from, push.total - pageSize + 1)));
    }
    this.messages = this.messages.map((m) => (m.stable || timestampOf(m.id) > push.stableTs ? m : { ...m, stable: true }));
    for (const m of push.messages) this.saw(m.id);
    this.changed();
  }

  private call<T>(method: string, params: object = {}): Promise<T> {
    return this.requireSocket()
      .call<T>(method, params)
      .catch((err: unknown) => {
        throw err instanceof RpcError ? new Error(err.message) : err;
      });
  }

  private requireSocket(): RpcSocket {
    if (!this.socket?.connected) throw new Error('not connected: connect to a server first');
    return this.socket;
  }

  private causal(): { after?: number } {
    return this.seenTs > 0 ? { after: this.seenTs } : {};
  }

  private saw(id: string): void {
    this.seenTs = Math.max(this.seenTs, timestampOf(id));
  }

  private say(text: string, error = false): void {
    this.log = [...this.log.slice(-(maxLogLines - 1)), { at: Date.now(), text, error }];
    this.changed();
  }
}

function timestampOf(id: string): number {
  return Number(id.split('.')[0]) || 0;
}
