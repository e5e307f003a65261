/**
 * What a client session can do, checked against the daemon's current state
 * before anything is broadcast, so that what is broadcast is always
 * applied the same way by every daemon. Parameters arrive checked against
 * their schemas (params.ts).
 */
import { JSONRPCErrorException } from 'json-rpc-2.0';
import type { ClusterConfig } from '../config/clusterConfig.js';
import { encodeOp, messageId, type ChatOp } from '../chat/operations.js';
import { findMessage, lastMessages, type Group } from '../chat/state.js';
import type { ChatApp } from '../daemon/chatApp.js';
import { BroadcastRefused, type Daemon } from '../daemon/daemon.js';
import { RpcErrors, recentMessages, type GroupView, type MessageView, type ViewResult } from './protocol.js';

export interface Session {
  readonly id: string;
  user?: string;
  group?: string;
}

export function rpcError(code: number, message: string): JSONRPCErrorException {
  return new JSONRPCErrorException(message, code);
}

export class ChatService {
  constructor(
    readonly daemon: Daemon,
    readonly app: ChatApp,
    private readonly config: ClusterConfig,
  ) {}

  setUser(session: Session, name: string): { user: string } {
    if (session.group !== undefined && session.user !== name) {
      throw rpcError(RpcErrors.invalidParams, 'leave the group before changing the user name');
    }
    session.user = name;
    return { user: name };
  }

  async join(session: Session, name: string): Promise<GroupView> {
    const user = requireUser(session);
    await this.broadcast({ op: 'join', session: session.id, user, group: name });
    session.group = name;
    return this.groupView(name, recentMessages);
  }

  async leave(session: Session): Promise<{ id: string }> {
    if (session.group === undefined) throw rpcError(RpcErrors.noGroup, 'you are not in a group');
    const m = await this.broadcast({ op: 'leave', session: session.id });
    session.group = undefined;
    return { id: messageId(m.ts, m.sender) };
  }

  async append(session: Session, text: string): Promise<{ id: string }> {
    const user = requireUser(session);
    const group = requireGroup(session);
    const m = await this.broadcast({ op: 'append', session: session.id, user, group, text });
    return { id: messageId(m.ts, m.sender) };
  }

  async like(session: Session, targetId: string, like: boolean): Promise<{ id: string }> {
    const user = requireUser(session);
    const group = requireGroup(session);
    const target = findMessage(this.currentGroup(group), targetId);
    if (!target) throw rpcError(RpcErrors.unknownMessage, `there is no message ${targetId} in ${group}`);
    if (like && target.user === user) throw rpcError(RpcErrors.ownMessage, 'you cannot like your own message');
    const liked = target.likes.includes(user);
    if (like && liked) throw rpcError(RpcErrors.alreadyLiked, 'you already like this message');
    if (!like && !liked) throw rpcError(RpcErrors.notLiked, 'you have not liked this message');
    const m = await this.broadcast({ op: like ? 'like' : 'unlike', user, group, message: target.id });
    return { id: messageId(m.ts, m.sender) };
  }

  history(session: Session): GroupView {
    return this.groupView(requireGroup(session), Infinity);
  }

  view(): ViewResult {
    return {
      server: this.daemon.id,
      view: this.daemon.view.map((id) => {
        const s = this.config.servers[id - 1];
        return { id, host: s.host, udpPort: s.udpPort, clientPort: s.clientPort };
      }),
    };
  }

  /** Sessions are gone: their users leave. */
  async closeSession(session: Session): Promise<void> {
    if (session.group === undefined) return;
    session.group = undefined;
    await this.broadcast({ op: 'leave', session: session.id }).catch(() => undefined);
  }

  groupView(name: string, count: number): GroupView {
    const group = this.currentGroup(name);
    const view = this.daemon.view;
    const participants = new Set<string>();
    for (const member of Object.values(group?.members ?? {})) if (view.includes(member.server)) participants.add(member.user);
    const shown: MessageView[] = lastMessages(group, count).map(({ n, message: m }) => ({
      n,
      id: m.id,
      user: m.user,
      text: m.text,
      likes: m.likes.length,
      likedBy: m.likes,
    }));
    return { group: name, participants: [...participants].sort(), total: group?.count ?? 0, messages: shown };
  }

  private currentGroup(name: string): Group | undefined {
    return this.app.replica.shown.groups[name];
  }

  private async broadcast(op: ChatOp) {
    try {
      return await this.daemon.broadcast(encodeOp(op));
    } catch (err) {
      if (err instanceof BroadcastRefused && err.reason === 'busy') throw rpcError(RpcErrors.busy, err.message);
      if (err instanceof BroadcastRefused && err.reason === 'storage') throw rpcError(RpcErrors.storageFailed, `${err.message}; connect to another server`);
      throw rpcError(RpcErrors.unavailable, `the server could not accept the operation: ${(err as Error).message}`);
    }
  }
}

function requireUser(session: Session): string {
  if (session.user === undefined) throw rpcError(RpcErrors.noUser, 'set a user name first (u <name>)');
  return session.user;
}

function requireGroup(session: Session): string {
  if (session.group === undefined) throw rpcError(RpcErrors.noGroup, 'join a group first (j <group>)');
  return session.group;
}
