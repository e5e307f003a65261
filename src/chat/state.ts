/**
 * The chat state and how one operation changes it. Deterministic: the same
 * operations in the same order give the same state at every daemon. An
 * operation that no longer fits the state when its turn comes (a second like
 * by the same user, an unlike without a like) changes nothing, everywhere.
 */
import { produce, type Draft } from 'immer';
import { formatMessageId, parseMessageId, type Message, type MessageId, type ServerId } from '../broadcast/types.js';
import { Edit, History, type ChatMessage, type HistoryJson } from './history.js';
import { decodeOp, type ChatOp } from './operations.js';
import { likeRefusal } from './rules.js';

export interface Member {
  readonly user: string;
  /** The server the session joined through. */
  readonly server: number;
}

export interface Group {
  readonly name: string;
  /** Members by session id. */
  readonly members: Readonly<Record<string, Member>>;
  /** Its messages in total order (a value immer does not draft: history.ts). */
  readonly history: History;
}

export interface ChatState {
  readonly groups: Readonly<Record<string, Group>>;
  /** The group each session is in. */
  readonly sessions: Readonly<Record<string, string>>;
}

/**
 * A dictionary keyed by names people choose. It has no prototype, so a group
 * called "constructor" or "__proto__" is just a name, not a path into
 * Object.prototype (which would crash, or worse, every daemon alike).
 */
export function dict<T>(entries: Iterable<readonly [string, T]> = []): Record<string, T> {
  const d = Object.create(null) as Record<string, T>;
  for (const [key, value] of entries) d[key] = value;
  return d;
}

export const emptyChatState: ChatState = { groups: dict(), sessions: dict() };

/** The chat state as a snapshot holds it. */
export interface ChatStateJson {
  readonly groups: Readonly<Record<string, GroupJson>>;
  readonly sessions: Readonly<Record<string, string>>;
}

/** A group as a snapshot holds it; snapshots before history.ts held the chunks in the group itself. */
interface GroupJson {
  readonly name: string;
  readonly members: Readonly<Record<string, Member>>;
  readonly history?: HistoryJson;
  readonly chunks?: readonly (readonly ChatMessage[])[];
  readonly count?: number;
}

/**
 * A state read back from a snapshot (JSON), with its dictionaries made
 * prototype-free again. Snapshots written before messages carried their
 * (ts, sender) hold an id "<ts>.<sender>" instead: read into the pair.
 */
export function restoreChatState(saved: ChatStateJson): ChatState {
  const restoreGroup = (group: GroupJson): Group => {
    const { chunks, count } = group.history ?? { chunks: group.chunks ?? [], count: group.count ?? 0 };
    return { name: group.name, members: dict(Object.entries(group.members)), history: History.fromJson({ chunks: chunks.map((chunk) => chunk.map(restoreMessage)), count }) };
  };
  return {
    groups: dict(Object.entries(saved.groups).map(([name, group]) => [name, restoreGroup(group)] as const)),
    sessions: dict(Object.entries(saved.sessions)),
  };
}

function restoreMessage(m: ChatMessage): ChatMessage {
  const old = m as ChatMessage & { id?: unknown };
  if (typeof old.id !== 'string') return m;
  const { ts, sender } = parseMessageId(old.id) ?? { ts: 0, sender: 0 };
  return { ts, sender, user: m.user, text: m.text, likes: m.likes };
}

/**
 * Each message's operation, decoded once: a message that a late one lands
 * before is applied again (replica.ts), and parsing its payload again would
 * cost more than the operation itself.
 */
const decoded = new WeakMap<Message, ChatOp | null>();

function opOf(m: Message): ChatOp | undefined {
  let op = decoded.get(m);
  if (op === undefined) {
    op = decodeOp(m.payload) ?? null;
    decoded.set(m, op);
  }
  return op ?? undefined;
}

/** Apply broadcast messages in order. */
export function applyMessages(state: ChatState, messages: readonly Message[]): ChatState {
  if (messages.length === 0) return state;
  const edit = new Edit();
  return produce(state, (draft) => {
    for (const m of messages) {
      const op = opOf(m);
      if (op) applyOp(draft, op, m, edit);
    }
  });
}

function applyOp(state: Draft<ChatState>, op: ChatOp, m: Message, edit: Edit): void {
  switch (op.op) {
    case 'join': {
      leave(state, op.session);
      const group = (state.groups[op.group] ??= newGroup(op.group));
      group.members[op.session] = { user: op.user, server: m.sender };
      state.sessions[op.session] = op.group;
      return;
    }
    case 'leave':
      return leave(state, op.session);
    case 'append': {
      const group = (state.groups[op.group] ??= newGroup(op.group));
      group.history = group.history.appended({ ts: m.ts, sender: m.sender, user: op.user, text: op.text, likes: [] }, edit);
      return;
    }
    case 'like':
    case 'unlike': {
      const group = state.groups[op.group];
      const target = findMessage(group, op.message);
      if (!group || !target || likeRefusal(target, op.user, op.op === 'like')) return;
      const likes = op.op === 'like' ? [...target.likes, op.user] : target.likes.filter((user) => user !== op.user);
      group.history = group.history.changed(op.message, (message) => ({ ...message, likes }), edit);
      return;
    }
  }
}

function leave(state: Draft<ChatState>, session: string): void {
  const current = state.sessions[session];
  if (current === undefined) return;
  delete state.groups[current].members[session];
  delete state.sessions[session];
}

function newGroup(name: string): Draft<Group> {
  return { name, members: dict(), history: History.empty };
}

/** The message with this id in the group's history. */
export function findMessage(group: Group | Draft<Group> | undefined, id: MessageId): ChatMessage | undefined {
  return group?.history.find(id);
}

/** Sessions joined through `server`: after it restarts they no longer exist, and must leave. */
export function orphanedSessions(state: ChatState, server: ServerId): string[] {
  const orphans: string[] = [];
  for (const group of Object.values(state.groups)) {
    for (const [session, member] of Object.entries(group.members)) if (member.server === server) orphans.push(session);
  }
  return orphans;
}

/** The whole history, in order. */
export function messagesOf(group: Group | undefined): ChatMessage[] {
  return group ? group.history.all() : [];
}

/** The last `count` messages with their 1-based place in the history. */
export function lastMessages(group: Group | undefined, count: number): { n: number; message: ChatMessage }[] {
  return group ? group.history.last(count) : [];
}

/** A message as people and JSON see it: its id written "<ts>.<sender>", and the server it was appended through. */
export interface PlainMessage {
  readonly id: string;
  readonly user: string;
  readonly server: number;
  readonly text: string;
  readonly likes: readonly string[];
}

/** The state with each group's history as one list: for people and JSON (tools/inspect). */
export function plainChatState(state: ChatState): { groups: Record<string, { name: string; members: Record<string, Member>; messages: PlainMessage[] }>; sessions: Record<string, string> } {
  const plain = (m: ChatMessage): PlainMessage => ({ id: formatMessageId(m), user: m.user, server: m.sender, text: m.text, likes: m.likes });
  const groups = dict(Object.entries(state.groups).map(([name, group]) => [name, { name, members: dict(Object.entries(group.members)), messages: messagesOf(group).map(plain) }] as const));
  return { groups, sessions: dict(Object.entries(state.sessions)) };
}

/** Canonical JSON (sorted keys): equal states give equal text. */
export function canonicalJson(value: unknown): string {
  if (value instanceof History) return canonicalJson(value.toJSON());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}
