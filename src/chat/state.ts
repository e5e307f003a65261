/**
 * The chat state and how one operation changes it. Deterministic: the same
 * operations in the same order give the same state at every daemon. An
 * operation that no longer fits the state when its turn comes (a second like
 * by the same user, an unlike without a like) changes nothing, everywhere.
 */
import { produce, type Draft } from 'immer';
import { compareOrder, formatMessageId, parseMessageId, type Message, type MessageId, type ServerId } from '../broadcast/types.js';
import { decodeOp, type ChatOp } from './operations.js';
import { likeRefusal } from './rules.js';

/**
 * A message of a group. Its id is the (ts, sender) of the broadcast message
 * that appended it, so it is a MessageId itself: its place in the total
 * order; `sender` is the server it was appended through.
 */
export interface ChatMessage extends MessageId {
  readonly user: string;
  readonly text: string;
  /** Users who like it, in the order they did. */
  readonly likes: readonly string[];
}

export interface Member {
  readonly user: string;
  /** The server the session joined through. */
  readonly server: number;
}

export interface Group {
  readonly name: string;
  /** Members by session id. */
  readonly members: Readonly<Record<string, Member>>;
  /**
   * The history in total order (so ids are sorted by (ts, sender)), in chunks
   * of at most `chunkMessages`: immer copies what an operation touches, so an
   * append or a like copies one chunk and the chunk list, not the whole history.
   */
  readonly chunks: readonly (readonly ChatMessage[])[];
  readonly count: number;
}

/** Messages per history chunk: bounds what one operation copies. */
export const chunkMessages = 256;

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

/**
 * A state read back from a snapshot (JSON), with its dictionaries made
 * prototype-free again. Snapshots written before messages carried their
 * (ts, sender) hold an id "<ts>.<sender>" instead: read into the pair.
 */
export function restoreChatState(saved: ChatState): ChatState {
  const restoreGroup = (group: Group): Group => ({ ...group, members: dict(Object.entries(group.members)), chunks: group.chunks.map((chunk) => chunk.map(restoreMessage)) });
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

/** Apply broadcast messages in order. */
export function applyMessages(state: ChatState, messages: readonly Message[]): ChatState {
  if (messages.length === 0) return state;
  return produce(state, (draft) => {
    for (const m of messages) {
      const op = decodeOp(m.payload);
      if (op) applyOp(draft, op, m);
    }
  });
}

function applyOp(state: Draft<ChatState>, op: ChatOp, m: Message): void {
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
      const last = group.chunks[group.chunks.length - 1];
      const message = { ts: m.ts, sender: m.sender, user: op.user, text: op.text, likes: [] };
      if (last && last.length < chunkMessages) last.push(message);
      else group.chunks.push([message]);
      group.count++;
      return;
    }
    case 'like':
    case 'unlike': {
      const target = findMessage(state.groups[op.group], op.message);
      if (!target || likeRefusal(target, op.user, op.op === 'like')) return;
      if (op.op === 'like') target.likes.push(op.user);
      else target.likes.splice(target.likes.indexOf(op.user), 1);
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
  return { name, members: dict(), chunks: [], count: 0 };
}

/** The message with this id: a binary search, since a group's history is in total order. */
export function findMessage<T extends ChatMessage | Draft<ChatMessage>>(group: { chunks: readonly (readonly T[])[] } | undefined, id: MessageId): T | undefined {
  if (!group) return undefined;
  const chunks = group.chunks;
  let lo = 0;
  let hi = chunks.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const chunk = chunks[mid];
    if (compareOrder(id, chunk[0]) < 0) hi = mid - 1;
    else if (compareOrder(id, chunk[chunk.length - 1]) > 0) lo = mid + 1;
    else return findInChunk(chunk, id);
  }
  return undefined;
}

/** A binary search within one chunk: reading fewer elements of a draft creates fewer proxies. */
function findInChunk<T extends MessageId>(chunk: readonly T[], id: MessageId): T | undefined {
  let lo = 0;
  let hi = chunk.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const order = compareOrder(id, chunk[mid]);
    if (order === 0) return chunk[mid];
    if (order < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return undefined;
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
  return group ? group.chunks.flat() : [];
}

/** The last `count` messages with their 1-based place in the history. */
export function lastMessages(group: Group | undefined, count: number): { n: number; message: ChatMessage }[] {
  if (!group) return [];
  const out: { n: number; message: ChatMessage }[] = [];
  let n = group.count;
  for (let c = group.chunks.length - 1; c >= 0 && out.length < count; c--) {
    const chunk = group.chunks[c];
    for (let i = chunk.length - 1; i >= 0 && out.length < count; i--) out.push({ n: n--, message: chunk[i] });
  }
  return out.reverse();
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
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value);
}
