/**
 * The chat pane's session with one server, through the console's relay
 * (/chat/<id>): the client session library (src/client/session.ts: the
 * causal token, request ids resent to the next server, the group mirrored
 * from pushes) over a browser WebSocket, plus what a page needs: the state
 * to draw and a short log of what happened.
 */
import { ClientSession, describeMutation, SessionError, type RpcChannel } from '../../src/client/session.js';
import type { GroupSummary, MessageEntry } from '../../src/rpc/protocol.js';
import { chatPathPrefix } from '../../src/console/api.js';
import { ErrorAnswer } from '../../src/client/calls.js';
import { RpcSocket } from './rpcSocket.js';

/** Messages mirrored after a join (the server's page size); "earlier" reads a page more. */
export const pageSize = 500;
/** Lines kept in the pane's log. */
const maxLogLines = 30;

export interface PaneNote {
  readonly at: number;
  readonly text: string;
  readonly error: boolean;
}

export class ChatSession {
  server: number | undefined;
  view: readonly number[] = [];
  groups: readonly GroupSummary[] = [];
  log: PaneNote[] = [];
  private readonly session: ClientSession;

  constructor(
    /** Called after every change, to redraw. */
    private readonly changed: () => void,
    /** Called when the server goes away (not when the user switches). */
    private readonly lost: (server: number, reason: string) => void,
  ) {
    this.session = new ClientSession(
      (server, handlers) => openRelayChannel(Number(server), handlers),
      {
        connected: (server) => this.say(`connected to server ${server}`),
        changed: () => this.changed(),
        lost: (server, reason) => {
          this.say(`lost server ${server}: ${reason || 'the connection closed'}`, true);
          this.lost(Number(server), reason ?? '');
        },
        resent: (m) => this.say(`resent ${describeMutation(m)}`),
        resendRefused: (m, error) => this.say(`resent ${describeMutation(m)}: ${error.message}`, true),
      },
      { mirrorMessages: pageSize },
    );
  }

  get connected(): boolean {
    return this.session.connected;
  }
  get user(): string | undefined {
    return this.session.user;
  }
  get group(): string | undefined {
    return this.session.group;
  }
  get participants(): readonly string[] {
    return this.session.mirror.participants;
  }
  get total(): number {
    return this.session.mirror.total;
  }
  /** A window of the group's history, kept up to date from pushes. */
  get messages(): readonly MessageEntry[] {
    return this.session.mirror.messages;
  }

  async connect(server: number): Promise<void> {
    this.server = server;
    this.changed();
    await this.session.connect(String(server)).catch((err: Error) => {
      this.say(`cannot connect to server ${server}: ${err.message}`, true);
      throw err;
    });
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
    if (name.trim() === '') throw new Error('usage: a user name');
    this.say(`user: ${await this.session.setUser(name.trim())}`);
  }

  async join(group: string): Promise<void> {
    const view = await this.session.join(group.trim());
    this.say(`joined ${view.group}`);
  }

  async leave(): Promise<void> {
    const group = this.session.group;
    await this.session.leave();
    this.say(`left ${group}`);
  }

  async append(text: string): Promise<void> {
    if (text.trim() === '') throw new Error('usage: a <text>');
    await this.session.append(text);
  }

  async like(message: MessageEntry, like: boolean): Promise<void> {
    await this.session.like(message.id, like);
    this.say(like ? `liked message ${message.n}` : `removed your like from message ${message.n}`);
  }

  /** The page of history before the first message shown. */
  readEarlier(): Promise<void> {
    return this.session.readEarlier();
  }

  async readView(): Promise<void> {
    this.view = (await this.session.view()).view.map((s) => s.id);
    this.changed();
  }

  async listGroups(): Promise<void> {
    this.groups = await this.session.groups();
    if (this.groups.length === 0) this.say('no groups yet (join one to create it)');
    this.changed();
  }

  close(): void {
    this.session.close();
  }

  private say(text: string, error = false): void {
    this.log = [...this.log.slice(-(maxLogLines - 1)), { at: Date.now(), text, error }];
    this.changed();
  }
}

/** A session channel through the console's relay to server `server`. */
async function openRelayChannel(server: number, handlers: { push(method: string, params: unknown): void; closed(reason: string | undefined): void }): Promise<RpcChannel> {
  const socket = await RpcSocket.connect(`${chatPathPrefix}${server}`, {
    notification: (method, params) => handlers.push(method, params),
    close: (_code, reason) => handlers.closed(reason),
  });
  return {
    get connected() {
      return socket.connected;
    },
    call: (method, params) =>
      socket.call(method, params).catch((err: unknown) => {
        throw err instanceof ErrorAnswer ? new SessionError(err.code, err.message) : err;
      }),
    close: () => socket.close(),
  };
}
