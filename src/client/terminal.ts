/**
 * The terminal client's command interpreter (docs/spec.md section 5), separate from
 * the terminal itself so that it can be driven line by line by scripts and tests.
 */
import type { ClusterConfig } from '../config/clusterConfig.js';
import type { GroupSnapshot, MessageEntry } from '../rpc/protocol.js';
import { openWebSocketChannel } from './connection.js';
import { ClientSession, describeMutation, SessionError } from './session.js';

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

export interface ClientOutput {
  /** A line (or lines) for the user. */
  print(text: string): void;
}

/** Messages shown after a join and on every change. */
const shownMessages = 10;

export class ChatClient {
  private readonly session: ClientSession;
  /** Message number on screen -> message id: what `l <n>` and `r <n>` refer to. */
  private screen = new Map<number, string>();
  quitRequested = false;
  /** Commands that failed (printed as errors): a script's exit status. */
  failedCommands = 0;
  /** The id of the last message this client appended. */
  private lastAppended: string | undefined;

  constructor(
    private readonly config: ClusterConfig | undefined,
    private readonly out: ClientOutput,
  ) {
    this.session = new ClientSession(openWebSocketChannel, {
      connected: (address) => {
        this.out.print(`connected to ${address}`);
        if (this.session.user !== undefined) this.out.print(`user: ${this.session.user}`);
      },
      changed: () => this.show(),
      lost: (address, reason) => {
        if (!this.quitRequested) this.out.print(`connection to ${address} lost${reason ? ` (${reason})` : ''}; connect to another server with c <id>`);
      },
      resent: (mutation) => this.out.print(`resent ${describeMutation(mutation)} (request ${mutation.params.requestId})`),
      resendRefused: (mutation, error) => this.error(`resent ${describeMutation(mutation)}: ${error.message}`),
    });
  }

  get connectedTo(): string | undefined {
    return this.session.connected ? this.session.server : undefined;
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
      if (err instanceof SessionError && err.resendsOnConnect) return this.error('the connection was lost before the server answered; c <id> resends it to another server (applied once either way)');
      this.error(err instanceof Error ? err.message : String(err));
    }
  }

  private async dispatch(command: string, arg: string): Promise<void> {
    switch (command) {
      case 'c':
        return this.connect(requireArg(arg, 'c <host:port> or c <server id>'));
      case 'u':
        return this.out.print(`user: ${await this.session.setUser(requireArg(arg, 'u <name>'))}`);
      case 'j':
        await this.session.join(requireArg(arg, 'j <group>'));
        return;
      case 'a':
        this.lastAppended = (await this.session.append(requireArg(arg, 'a <text>'))).id;
        return;
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
        this.session.close();
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

  /** Connect (a new server is a new session: the user name and group are carried over, then what the last server never answered is resent). */
  async connect(target: string): Promise<void> {
    await this.session.connect(this.resolve(target));
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

  private async like(like: boolean, numberText: string): Promise<void> {
    if (this.session.group === undefined) throw new Error('join a group first (j <group>)');
    if (!/^\d+$/.test(numberText)) throw new Error(`"${numberText}" is not a message number`);
    const id = this.screen.get(Number(numberText)) ?? (await this.idOf(Number(numberText)));
    await this.session.like(id, like);
    this.out.print(like ? `liked message ${numberText}` : `removed your like from message ${numberText}`);
  }

  /** A message number not on the screen: its id, asked of the server (one message of the history). */
  private async idOf(n: number): Promise<string> {
    const page = await this.session.history({ from: Math.max(1, n), count: 1 });
    const message = page.messages[0];
    if (!message || message.n !== n) throw new Error(`there is no message ${n} in ${page.group} (it has ${page.total})`);
    return message.id;
  }

  /** The whole history, a page at a time as the server gives it (a long one never in one frame). */
  private async printHistory(): Promise<void> {
    if (this.session.group === undefined) throw new Error('join a group first (j <group>)');
    let page = await this.session.history({ from: 1 });
    this.print(page);
    if (page.complete === false) this.out.print('note: this server has not yet received every message you have seen (a partition?); some may be missing until it has');
    const total = page.total;
    for (let next = page.messages.length + 1; next <= total && page.messages.length > 0; next += page.messages.length) {
      page = await this.session.history({ from: next });
      this.out.print(page.messages.filter((m) => m.n <= total).map(formatMessage).join('\n'));
    }
  }

  private async printGroups(): Promise<void> {
    const groups = await this.session.groups();
    if (groups.length === 0) return this.out.print('no groups yet (j <group> creates one)');
    this.out.print(groups.map((g) => `${g.group}: ${g.total} message${g.total === 1 ? '' : 's'}, participants: ${g.participants.join(', ') || '(none)'}`).join('\n'));
  }

  private async printView(): Promise<void> {
    const result = await this.session.view();
    this.out.print(`view of server ${result.server}: ${result.view.map((s) => s.id).join(', ')}`);
  }

  /** The group as the session mirrors it: its last messages. */
  private show(): void {
    const { mirror } = this.session;
    if (mirror.group === undefined) return;
    this.print({ group: mirror.group, participants: [...mirror.participants], total: mirror.total, messages: mirror.last(shownMessages) });
  }

  private print(view: GroupSnapshot): void {
    this.screen = new Map(view.messages.map((m) => [m.n, m.id]));
    const lines = [`--- ${view.group} | participants: ${view.participants.join(', ') || '(none)'} | ${view.total} message${view.total === 1 ? '' : 's'} ---`];
    for (const m of view.messages) lines.push(formatMessage(m));
    this.out.print(lines.join('\n'));
  }

  private error(message: string): void {
    this.failedCommands++;
    this.out.print(`error: ${message}`);
  }

  /**
   * Wait, up to timeoutMs, until the group shown holds the last message this
   * client appended: the answer comes before the push that shows it, and a
   * script's output should end with the group as it is after its commands.
   */
  async settle(timeoutMs = 2000): Promise<void> {
    const shown = () => this.lastAppended === undefined || this.session.mirror.messages.some((m) => m.id === this.lastAppended);
    for (const deadline = performance.now() + timeoutMs; !shown() && this.session.connected && performance.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
  }

  close(): void {
    this.quitRequested = true;
    this.session.close();
  }
}

/** A message line; a tentative one (its place may still change after a heal) says so. */
function formatMessage(m: MessageEntry): string {
  return `${String(m.n).padStart(3)}. ${m.user}: ${m.text}  [${m.likes} like${m.likes === 1 ? '' : 's'}]${m.stable ? '' : '  (tentative)'}`;
}

function requireArg(arg: string, usage: string): string {
  if (arg === '') throw new Error(`usage: ${usage}`);
  return arg;
}
