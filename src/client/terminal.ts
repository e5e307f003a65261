/**
 * The terminal client's command interpreter (docs/spec.md section 5), separate from
 * the terminal itself so that it can be driven line by line by scripts and tests.
 */
import { randomUUID } from 'node:crypto';
import type { ClusterConfig } from '../config/clusterConfig.js';
import type { GroupView, MessageView } from '../rpc/protocol.js';
import { ChorusConnection, RpcCallError } from './connection.js';

export const helpText = [
  'commands:',
  '  c <id> | c <host:port>  connect to server <id> of clusterconfig, or an address',
  '  u <name>                set the user name',
  '  j <group>               join a group (created if new); leaves the one before',
  '  a <text>                append a message to the group',
  '  l <n> / r <n>           like / remove your like on message number <n>',
  '  p                       print the whole history (read a page at a time)',
  '  v                       print the servers in the connected server\'s view',
  '  g                       list the groups (no join needed)',
  '  h                       this help',
  '  q                       quit',
].join('\n');

/** A mutating request, with the request id it keeps across resends. */
type Unanswered = { readonly method: 'append'; readonly params: { readonly text: string; readonly requestId: string } } | { readonly method: 'like' | 'unlike'; readonly params: { readonly id: string; readonly requestId: string } };

export interface ClientOutput {
  /** A line (or lines) for the user. */
  print(text: string): void;
}

export class ChatClient {
  private connection: ChorusConnection | undefined;
  private user: string | undefined;
  private group: string | undefined;
  /** Message number on screen -> message id: what `l <n>` and `r <n>` refer to. */
  private screen = new Map<number, string>();
  quitRequested = false;
  /** Requests whose connection was lost before their answer: resent after the next connect. */
  private unanswered: Unanswered[] = [];
  /** The highest message timestamp this client has seen (causal()). */
  private seenTs = 0;
  /** Commands that failed (printed as errors): a script's exit status. */
  failedCommands = 0;

  constructor(
    private readonly config: ClusterConfig | undefined,
    private readonly out: ClientOutput,
  ) {}

  get connectedTo(): string | undefined {
    return this.connection?.connected ? this.connection.address : undefined;
  }

  /** Run one command line. Never throws: problems are printed as one-line errors. */
  async execute(line: string): Promise<void> {
    const trimmed = line.trim();
    if (trimmed === '') return;
    const [command] = trimmed.split(/\s+/, 1);
    const arg = trimmed.slice(command.length).trim();
    try {
      await this.dispatch(command, arg);
    } catch (err) {
      this.error(err instanceof RpcCallError || err instanceof Error ? err.message : String(err));
    }
  }

  private async dispatch(command: string, arg: string): Promise<void> {
    switch (command) {
      case 'c':
        return this.connect(requireArg(arg, 'c <host:port> or c <server id>'));
      case 'u':
        return this.setUser(requireArg(arg, 'u <name>'));
      case 'j':
        return this.join(requireArg(arg, 'j <group>'));
      case 'a':
        return this.append(requireArg(arg, 'a <text>'));
      case 'l':
      case 'r':
        return this.like(command === 'l', requireArg(arg, `${command} <message number>`));
      case 'p':
        return this.printHistory();
      case 'v':
        return this.printView();
      case 'g':
        return this.printGroups();
      case 'q':
        this.quitRequested = true;
        this.connection?.close();
        return;
      case 'h':
      case 'help':
      case '?':
        this.out.print(helpText);
        return;
      default:
        throw new Error(`unknown command "${command}" (h for help)`);
    }
  }

  async connect(target: string): Promise<void> {
    const address = this.resolve(target);
    const previous = this.connection;
    const connection = await ChorusConnection.connect(address);
    this.connection = connection;
    previous?.removeAllListeners('close');
    previous?.close();
    connection.on('group', (view) => {
      if (view.group === this.group) this.show(view);
    });
    connection.on('close', (reason) => {
      if (this.connection !== connection) return;
      if (!this.quitRequested) this.out.print(`connection to ${address} lost${reason ? ` (${reason})` : ''}; connect to another server with c <id>`);
    });
    this.out.print(`connected to ${address}`);
    // A new server is a new session: carry the user name and group over, then resend what the last server never answered.
    if (this.user !== undefined) await this.setUser(this.user);
    if (this.group !== undefined) await this.join(this.group);
    await this.resendUnanswered();
  }

  /**
   * Send a mutating request with a request id; if the connection is lost
   * before the answer, it is kept and resent, with the same id, after the
   * next connect: applied once whether or not the lost server had taken it.
   */
  private async mutate(request: Unanswered): Promise<{ id: string }> {
    const connection = this.requireConnection();
    try {
      const result = request.method === 'append' ? await connection.call('append', { ...request.params, ...this.causal() }) : await connection.call(request.method, { ...request.params, ...this.causal() });
      this.saw(result.id);
      return result;
    } catch (err) {
      if (connection.connected) throw err;
      this.unanswered.push(request);
      throw new Error('the connection was lost before the server answered; c <id> resends it to another server (applied once either way)', { cause: err });
    }
  }

  private async resendUnanswered(): Promise<void> {
    const pending = this.unanswered.splice(0);
    for (const request of pending) {
      await this.mutate(request);
      this.out.print(`resent ${request.method === 'append' ? `"${request.params.text}"` : `${request.method} of ${request.params.id}`} (request ${request.params.requestId})`);
    }
  }

  private resolve(target: string): string {
    if (/^\d+$/.test(target)) {
      if (!this.config) throw new Error('no cluster configuration to look up server numbers in; use c <host:port>');
      const server = this.config.servers.find((s) => s.id === Number(target));
      if (!server) throw new Error(`there is no server ${target} in ${this.config.file} (servers 1-${this.config.servers.length})`);
      return `${server.host}:${server.clientPort}`;
    }
    if (!/^[^\s:]+:\d{1,5}$/.test(target)) throw new Error(`"${target}" is neither host:port nor a server number`);
    return target;
  }

  private requireConnection(): ChorusConnection {
    if (!this.connection?.connected) throw new Error('not connected: connect to a server first (c <id> or c <host:port>)');
    return this.connection;
  }

  private async setUser(name: string): Promise<void> {
    const result = await this.requireConnection().call('user', { name });
    this.user = result.user;
    this.out.print(`user: ${result.user}`);
  }

  private async join(group: string): Promise<void> {
    const connection = this.requireConnection();
    if (this.user === undefined) throw new Error('set a user name first (u <name>)');
    const view = await connection.call('join', { group, ...this.causal() });
    this.group = view.group;
    this.show(view);
  }

  private async append(text: string): Promise<void> {
    this.requireConnection();
    if (this.user === undefined) throw new Error('set a user name first (u <name>)');
    if (this.group === undefined) throw new Error('join a group first (j <group>)');
    await this.mutate({ method: 'append', params: { text, requestId: randomUUID() } });
  }

  private async like(like: boolean, numberText: string): Promise<void> {
    this.requireConnection();
    if (this.group === undefined) throw new Error('join a group first (j <group>)');
    if (!/^\d+$/.test(numberText)) throw new Error(`"${numberText}" is not a message number`);
    const id = this.screen.get(Number(numberText)) ?? (await this.idOf(Number(numberText)));
    await this.mutate({ method: like ? 'like' : 'unlike', params: { id, requestId: randomUUID() } });
    this.out.print(like ? `liked message ${numberText}` : `removed your like from message ${numberText}`);
  }

  /** A message number not on the screen: its id, asked of the server (one message of the history). */
  private async idOf(n: number): Promise<string> {
    const page = await this.requireConnection().call('history', { from: Math.max(1, n), count: 1 });
    const message = page.messages[0];
    if (!message || message.n !== n) throw new Error(`there is no message ${n} in ${page.group} (it has ${page.total})`);
    return message.id;
  }

  /** The whole history, a page at a time as the server gives it (a long one never in one frame). */
  private async printHistory(): Promise<void> {
    const connection = this.requireConnection();
    if (this.group === undefined) throw new Error('join a group first (j <group>)');
    let page = await connection.call('history', { from: 1, ...this.causal() });
    this.show(page);
    if (page.complete === false) this.out.print('note: this server has not yet received every message you have seen (a partition?); some may be missing until it has');
    const total = page.total;
    for (let next = page.messages.length + 1; next <= total && page.messages.length > 0; next += page.messages.length) {
      page = await connection.call('history', { from: next });
      for (const m of page.messages) this.saw(m.id);
      this.out.print(page.messages.filter((m) => m.n <= total).map(formatMessage).join('\n'));
    }
  }

  private async printGroups(): Promise<void> {
    const { groups } = await this.requireConnection().call('groups');
    if (groups.length === 0) return this.out.print('no groups yet (j <group> creates one)');
    this.out.print(groups.map((g) => `${g.group}: ${g.total} message${g.total === 1 ? '' : 's'}, participants: ${g.participants.join(', ') || '(none)'}`).join('\n'));
  }

  private async printView(): Promise<void> {
    const result = await this.requireConnection().call('view');
    this.out.print(`view of server ${result.server}: ${result.view.map((s) => s.id).join(', ')}`);
  }

  /**
   * The highest message timestamp seen, sent with every operation (`after`):
   * after a reconnect to another server, new messages are still ordered
   * after everything this client saw, its own earlier ones included.
   */
  private causal(): { after?: number } {
    return this.seenTs > 0 ? { after: this.seenTs } : {};
  }

  private saw(id: string): void {
    this.seenTs = Math.max(this.seenTs, Number(id.split('.')[0]) || 0);
  }

  private show(view: GroupView): void {
    for (const m of view.messages) this.saw(m.id);
    this.screen = new Map(view.messages.map((m) => [m.n, m.id]));
    const lines = [`--- ${view.group} | participants: ${view.participants.join(', ') || '(none)'} | ${view.total} message${view.total === 1 ? '' : 's'} ---`];
    for (const m of view.messages) lines.push(formatMessage(m));
    this.out.print(lines.join('\n'));
  }

  private error(message: string): void {
    this.failedCommands++;
    this.out.print(`error: ${message}`);
  }

  close(): void {
    this.quitRequested = true;
    this.connection?.close();
  }
}

/** A message line; a tentative one (its place may still change after a heal) says so. */
function formatMessage(m: MessageView): string {
  return `${String(m.n).padStart(3)}. ${m.user}: ${m.text}  [${m.likes} like${m.likes === 1 ? '' : 's'}]${m.stable ? '' : '  (tentative)'}`;
}

function requireArg(arg: string, usage: string): string {
  if (arg === '') throw new Error(`usage: ${usage}`);
  return arg;
}
