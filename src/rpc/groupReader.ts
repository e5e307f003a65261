/**
 * What clients read of the chat, never broadcasting anything: a group's
 * history a page at a time, the list of groups, the view, the last messages
 * shown after a join, and what changed since a session was last shown its
 * group (pushes). Writes and the session rules are in chatService.ts.
 */
import { formatMessageId, type MessageId } from '../broadcast/types.js';
import { likesChanged } from '../chat/likes.js';
import { messageCount, type Group } from '../chat/model.js';
import type { ChatPort } from '../server/chatPort.js';
import { findMessage, firstDifference, lastMessages, messageRange, type PlacedMessage } from '../server/groupQueries.js';
import type { ClusterConfig } from '../config/clusterConfig.js';
import { rpcError } from './errors.js';
import { sleep, type RpcTimers } from './timers.js';
import { maxHistoryPage, RpcErrors, type GroupChanges, type GroupSummary, type GroupSnapshot, type MessageEntry, type ViewResult } from './protocol.js';

/** Which page of a history to read (params.ts checks them). */
export interface HistoryParams {
  readonly group?: string;
  readonly from?: number;
  readonly since?: MessageId;
  readonly before?: MessageId;
  readonly count?: number;
  readonly after?: number;
}

/** How long a read with `after` waits for this server to hold everything up to it. */
const readWaitMs = 2000;

export class GroupReader {
  constructor(
    private readonly port: ChatPort,
    private readonly config: ClusterConfig,
    private readonly timers: RpcTimers,
  ) {}

  /**
   * Messages from .. from+count-1 (1-based) of group `name`, or those after
   * or before a message. With `after` (the highest timestamp
   * the client has seen, its own writes included) it first waits, up to
   * readWaitMs, until this server holds every message up to it, and says
   * whether it does (read-your-writes on a server that may lag behind).
   */
  async history(name: string, params: HistoryParams): Promise<GroupSnapshot> {
    const where = [params.from, params.since, params.before].filter((p) => p !== undefined).length;
    if (where > 1) throw rpcError(RpcErrors.invalidParams, 'invalid history: give at most one of from, since and before');
    if (params.after === undefined) return this.page(name, params);
    const complete = await this.holdAllUpTo(params.after);
    return { ...this.page(name, params), complete };
  }

  private async holdAllUpTo(after: number): Promise<boolean> {
    const deadline = this.timers.now() + readWaitMs;
    while (this.port.holdsAllUpTo() < after) {
      if (this.timers.now() >= deadline) return false;
      await sleep(this.timers, 10);
    }
    return true;
  }

  /** A page by place (from), or by message id (since: the messages after it; before: those just before it), which stays right when a heal moves places. */
  private page(name: string, { from, since, before, count = maxHistoryPage }: HistoryParams): GroupSnapshot {
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
    const messages = total - from <= maxHistoryPage ? this.entries(messageRange(current, from, total, this.port.history)) : undefined;
    return { from: from + 1, ...(messages ? { messages } : {}), likes: likes.map(({ n, message, likes: likedBy }) => ({ n, id: formatMessageId(message), likedBy: [...likedBy] })) };
  }

  /** The group with its last `count` messages (after a join, and pushed on every change). */
  groupSnapshot(name: string, count: number): GroupSnapshot {
    return this.describe(name, lastMessages(this.currentGroup(name), count, this.port.history));
  }

  private describe(name: string, messages: readonly PlacedMessage[]): GroupSnapshot {
    return { group: name, participants: this.participants(name), total: messageCount(this.currentGroup(name)), messages: this.entries(messages) };
  }

  private entries(messages: readonly PlacedMessage[]): MessageEntry[] {
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

  /** The group as the shown state has it now. */
  private currentGroup(name: string): Group | undefined {
    return this.port.shown().groups[name];
  }
}
