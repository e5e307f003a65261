/**
 * The chat state and how one operation changes it. Deterministic: the same
 * operations in the same order give the same state at every daemon. An
 * operation that no longer fits the state when its turn comes (a second like
 * by the same user, an unlike without a like) changes nothing, everywhere.
 *
 * A group's history is split: its first `stored` messages are in the history
 * store (stable, in the segment files), the rest in its tail. The state is
 * immutable and the store only grows, so a state always reads the same
 * messages from it: only the first `stored`.
 */
import { produce, type Draft } from 'immer';
import { compareOrder, formatMessageId, parseMessageId, type Message, type MessageId, type ServerId } from '../broadcast/types.js';
import { Edit, History, type ChatMessage } from './history.js';
import type { StoredHistory } from './historyStore.js';
import { decodeOp, type ChatOp } from './operations.js';
import { likeRefusal, type LikeRefusal } from './rules.js';

/** Why an operation had no effect in the total order. */
export type OperationRefusal = LikeRefusal | 'message-unknown' | 'duplicate-request' | 'not-an-operation';

/** A user's request ids remembered: at least this many of the latest (at most a bucket more); a retry after more newer requests may be applied again. */
export const maxRequestsPerUser = 1000;
/**
 * Request ids are remembered in buckets, the oldest bucket dropped whole:
 * so a request changes one small bucket, never a list of a thousand (which
 * immer would copy, or walk element by element on a shift, every time).
 */
const requestBucketSize = 100;
const requestBuckets = Math.ceil(maxRequestsPerUser / requestBucketSize) + 1;

/** A user's recent request ids, in buckets, oldest first. */
export interface RequestLog {
  readonly buckets: readonly RequestBucket[];
}

/** Up to requestBucketSize request ids: each with the id ("<ts>.<sender>") of the message that carried it first. */
export interface RequestBucket {
  readonly size: number;
  readonly ids: Readonly<Record<string, string>>;
  /** The rule each refused one broke (absent: it took effect): a retry's answer is the original outcome. */
  readonly refused?: Readonly<Record<string, string>>;
}

/** A user's request log as snapshots from before the buckets held it. */
interface OldRequestLog {
  readonly ids: Readonly<Record<string, string>>;
  readonly refused?: Readonly<Record<string, string>>;
  readonly order: readonly string[];
}

/** The first operation that carried a request id: its message id, and the rule it broke if it had no effect. */
export interface OriginalRequest {
  readonly id: string;
  readonly refused?: string;
}

export interface Member {
  readonly user: string;
  /** The server the session joined through. */
  readonly server: number;
}

/** Users who like message n of a group (0-based), for the liked ones only, in chunks of likeChunk messages by n. */
export type Likes = Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;
const likeChunk = 256;

export interface Group {
  readonly name: string;
  /** Members by session id. */
  readonly members: Readonly<Record<string, Member>>;
  /** The group's first `stored` messages are in the history store (historyStore.ts). */
  readonly stored: number;
  /** The messages after them, in total order (a value immer does not draft: history.ts). */
  readonly tail: History;
  readonly likes: Likes;
}

export interface ChatState {
  readonly groups: Readonly<Record<string, Group>>;
  /** The group each session is in. */
  readonly sessions: Readonly<Record<string, string>>;
  /** Request ids by user, so that a client's retry is applied once. */
  readonly requests: Readonly<Record<string, RequestLog>>;
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

export const emptyChatState: ChatState = { groups: dict(), sessions: dict(), requests: dict() };

/** The chat state as a snapshot holds it. */
export interface ChatStateJson {
  readonly groups: Readonly<Record<string, GroupJson>>;
  readonly sessions: Readonly<Record<string, string>>;
  /** Absent in snapshots from before request ids. */
  readonly requests?: Readonly<Record<string, RequestLog | OldRequestLog>>;
}

/** A group as a snapshot holds it; older snapshots held the whole history, with each message's likes (`history` or `chunks`). */
interface GroupJson {
  readonly name: string;
  readonly members: Readonly<Record<string, Member>>;
  readonly stored?: number;
  readonly tail?: readonly ChatMessage[];
  readonly likes?: Likes;
  readonly history?: { readonly chunks: readonly (readonly OldMessage[])[] };
  readonly chunks?: readonly (readonly OldMessage[])[];
}

type OldMessage = ChatMessage & { readonly likes?: readonly string[]; readonly id?: string };

/**
 * A state read back from a snapshot (JSON), with its dictionaries made
 * prototype-free again. A snapshot from before the history store holds each
 * group's whole history: it becomes the tail (stored by the caller, chatApp.ts),
 * its likes the like table; messages identified by "<ts>.<sender>" are read
 * into the pair.
 */
export function restoreChatState(saved: ChatStateJson): ChatState {
  const restoreGroup = (group: GroupJson): Group => {
    const old = group.history?.chunks ?? group.chunks;
    if (!old) return { name: group.name, members: dict(Object.entries(group.members)), stored: group.stored ?? 0, tail: History.of(group.tail ?? []), likes: restoreLikes(group.likes ?? {}) };
    const messages = old.flat();
    const likes: Record<string, Record<string, readonly string[]>> = dict();
    messages.forEach((m, n) => {
      if (m.likes && m.likes.length > 0) (likes[likeChunkOf(n)] ??= dict())[n] = m.likes;
    });
    return { name: group.name, members: dict(Object.entries(group.members)), stored: 0, tail: History.of(messages.map(restoreMessage)), likes };
  };
  return {
    groups: dict(Object.entries(saved.groups).map(([name, group]) => [name, restoreGroup(group)] as const)),
    sessions: dict(Object.entries(saved.sessions)),
    requests: dict(Object.entries(saved.requests ?? {}).map(([user, log]) => [user, restoreRequestLog(log)] as const)),
  };
}

function restoreRequestLog(log: RequestLog | OldRequestLog): RequestLog {
  if ('buckets' in log) return { buckets: log.buckets.map((b) => ({ size: b.size, ids: dict(Object.entries(b.ids)), ...(b.refused ? { refused: dict(Object.entries(b.refused)) } : {}) })) };
  // The old flat log: its latest ids, oldest first, into buckets.
  const buckets: Draft<RequestBucket>[] = [];
  for (const rid of log.order.slice(-maxRequestsPerUser)) addRequest(buckets, rid, log.ids[rid], log.refused?.[rid]);
  return { buckets };
}

function restoreLikes(likes: Likes): Likes {
  return dict(Object.entries(likes).map(([chunk, users]) => [chunk, dict(Object.entries(users))] as const));
}

function restoreMessage(m: OldMessage): ChatMessage {
  const { ts, sender } = typeof m.id === 'string' ? (parseMessageId(m.id) ?? { ts: 0, sender: 0 }) : m;
  return { ts, sender, user: m.user, text: m.text };
}

/**
 * Each message's operation, decoded once: a message that a late one lands
 * before is applied again (replica.ts), and parsing its payload again would
 * cost more than the operation itself.
 */
const decoded = new WeakMap<Message, ChatOp | null>();

export function operationOf(m: Message): ChatOp | undefined {
  let op = decoded.get(m);
  if (op === undefined) {
    op = decodeOp(m.payload) ?? null;
    decoded.set(m, op);
  }
  return op ?? undefined;
}

/** Apply broadcast messages in order; `stored` is the history store the state's groups count their stored messages in. */
export function applyMessages(state: ChatState, messages: readonly Message[], stored: StoredHistory): ChatState {
  if (messages.length === 0) return state;
  const edit = new Edit();
  return produce(state, (draft) => {
    for (const m of messages) {
      const op = operationOf(m);
      if (op) applyOp(draft, op, m, edit, stored);
    }
  });
}

function applyOp(state: Draft<ChatState>, op: ChatOp, m: Message, edit: Edit, stored: StoredHistory): void {
  if ((op.op === 'append' || op.op === 'like' || op.op === 'unlike') && op.rid !== undefined) {
    // refusalOf says duplicate-request when the id was seen before; else the outcome is remembered for retries.
    const refusal = refusalOf(state, m, stored);
    if (refusal === 'duplicate-request') return;
    rememberRequest(state, op.user, op.rid, m, refusal);
  }
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
      group.tail = group.tail.appended(appendedMessage(op, m), edit);
      return;
    }
    case 'like':
    case 'unlike': {
      const group = state.groups[op.group];
      const target = group && findMessage(group, op.message, stored);
      if (!group || !target || likeRefusal({ user: target.message.user, likes: target.likes }, op.user, op.op === 'like')) return;
      setLikes(group, target.n - 1, op.op === 'like' ? [...target.likes, op.user] : target.likes.filter((user) => user !== op.user));
      return;
    }
  }
}

/** The id of the message that first carried the user's request `rid`, if the state remembers it. */
export function originalRequest(state: ChatState | Draft<ChatState>, user: string, rid: string): OriginalRequest | undefined {
  const buckets = state.requests[user]?.buckets ?? [];
  for (let i = buckets.length - 1; i >= 0; i--) {
    const id = buckets[i].ids[rid];
    if (id === undefined) continue;
    const refused = buckets[i].refused?.[rid];
    return refused === undefined ? { id } : { id, refused };
  }
  return undefined;
}

function rememberRequest(state: Draft<ChatState>, user: string, rid: string, m: Message, refused: OperationRefusal | undefined): void {
  addRequest((state.requests[user] ??= { buckets: [] }).buckets, rid, formatMessageId(m), refused);
}

/** Add a request id to the newest bucket, opening a new one when it is full and dropping the oldest past requestBuckets. */
function addRequest(buckets: Draft<RequestBucket>[], rid: string, id: string, refused: string | undefined): void {
  if (buckets.length === 0 || buckets[buckets.length - 1].size >= requestBucketSize) {
    buckets.push({ size: 0, ids: dict() });
    if (buckets.length > requestBuckets) buckets.shift();
  }
  const bucket = buckets[buckets.length - 1];
  bucket.ids[rid] = id;
  if (refused !== undefined) (bucket.refused ??= dict())[rid] = refused;
  bucket.size++;
}

/** Why the operation has no effect when applied to `state` (the rule it breaks), or undefined when it takes effect. */
export function refusalOf(state: ChatState | Draft<ChatState>, m: Message, stored: StoredHistory): OperationRefusal | undefined {
  const op = operationOf(m);
  if (!op) return 'not-an-operation';
  if ((op.op === 'append' || op.op === 'like' || op.op === 'unlike') && op.rid !== undefined && originalRequest(state, op.user, op.rid) !== undefined) return 'duplicate-request';
  switch (op.op) {
    case 'join':
    case 'leave':
    case 'append':
      return undefined;
    case 'like':
    case 'unlike': {
      const group = state.groups[op.group];
      const target = group && findMessage(group, op.message, stored);
      if (!group || !target) return 'message-unknown';
      return likeRefusal({ user: target.message.user, likes: target.likes }, op.user, op.op === 'like');
    }
  }
}

/** The message an append operation adds: the id of its broadcast message, the user and text of the operation. */
function appendedMessage(op: { readonly user: string; readonly text: string }, m: MessageId): ChatMessage {
  return { ts: m.ts, sender: m.sender, user: op.user, text: op.text };
}

function leave(state: Draft<ChatState>, session: string): void {
  const current = state.sessions[session];
  if (current === undefined) return;
  delete state.groups[current].members[session];
  delete state.sessions[session];
}

function newGroup(name: string): Draft<Group> {
  return { name, members: dict(), stored: 0, tail: History.empty, likes: dict() };
}

function likeChunkOf(n: number): string {
  return String(Math.floor(n / likeChunk));
}

function likesOf(group: Group | Draft<Group>, index: number): readonly string[] {
  return group.likes[likeChunkOf(index)]?.[index] ?? [];
}

function setLikes(group: Draft<Group>, index: number, users: string[]): void {
  const chunk = (group.likes[likeChunkOf(index)] ??= dict());
  if (users.length > 0) chunk[index] = users;
  else delete chunk[index];
}

/** A message as clients see it: its 1-based place in the group's history, and who likes it. */
export interface ShownMessage {
  readonly n: number;
  readonly message: ChatMessage;
  readonly likes: readonly string[];
}

/** Messages in the group's history. */
export function messageCount(group: Group | undefined): number {
  return group ? group.stored + group.tail.count : 0;
}

/** The message with this id in the group: in its tail, or among its stored messages. */
export function findMessage(group: Group | Draft<Group>, id: MessageId, stored: StoredHistory): ShownMessage | undefined {
  const first = group.tail.first();
  if (first && compareOrder(id, first) >= 0) {
    const found = group.tail.find(id);
    return found && shown(group, group.stored + found.index, found.message);
  }
  const found = stored.find(group.name, id, group.stored);
  return found && shown(group, found.index, found.message);
}

/**
 * The first 0-based position at which two versions of a group's history
 * differ (the length of the shorter when one only extends the other). The
 * messages both have stored are final and equal, so only what follows the
 * smaller stored count is compared: the tails, not the history.
 */
export function firstDifference(prev: Group, cur: Group, stored: StoredHistory): number {
  const common = Math.min(messageCount(prev), messageCount(cur));
  if (prev.stored === cur.stored) return Math.min(common, prev.stored + prev.tail.commonPrefix(cur.tail));
  // A compaction in between moved messages to the store: compare from the smaller stored count.
  const start = Math.min(prev.stored, cur.stored);
  const a = plainRange(prev, start, common, stored);
  const b = plainRange(cur, start, common, stored);
  for (let i = 0; i < a.length; i++) if (compareOrder(a[i], b[i]) !== 0) return start + i;
  return common;
}

/** The 0-based positions before `before` whose likes differ between two versions of a group (only chunks that changed are read). */
export function likesChanged(prev: Group, cur: Group, before: number): number[] {
  if (prev.likes === cur.likes) return [];
  const changed: number[] = [];
  for (const chunk of new Set([...Object.keys(prev.likes), ...Object.keys(cur.likes)])) {
    const a = prev.likes[chunk] ?? {};
    const b = cur.likes[chunk] ?? {};
    if (a === b) continue;
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const n = Number(key);
      if (n < before && (a[key] ?? []).join('\n') !== (b[key] ?? []).join('\n')) changed.push(n);
    }
  }
  return changed.sort((x, y) => x - y);
}

function plainRange(group: Group, from: number, to: number, stored: StoredHistory): ChatMessage[] {
  if (from >= to) return [];
  const fromStore = from < group.stored ? stored.read(group.name, from, Math.min(to, group.stored)) : [];
  const fromTail = to > group.stored ? group.tail.slice(Math.max(0, from - group.stored), to - group.stored) : [];
  return [...fromStore, ...fromTail];
}

/** Messages from .. to-1 (0-based) of the group's history: the stored ones read from the store. */
export function messageRange(group: Group | undefined, from: number, to: number, stored: StoredHistory): ShownMessage[] {
  if (!group) return [];
  const end = Math.min(to, messageCount(group));
  const start = Math.max(0, from);
  if (start >= end) return [];
  return plainRange(group, start, end, stored).map((message, i) => shown(group, start + i, message));
}

/** The last `count` messages of the group. */
export function lastMessages(group: Group | undefined, count: number, stored: StoredHistory): ShownMessage[] {
  const total = messageCount(group);
  return messageRange(group, total - count, total, stored);
}

function shown(group: Group | Draft<Group>, index: number, message: ChatMessage): ShownMessage {
  return { n: index + 1, message, likes: likesOf(group, index) };
}

/**
 * The state with each named group's tail moved into the store as far as the
 * store holds it: the store holds a group's stable messages, which come
 * first in every state's order, so those are what the tail starts with.
 */
export function compactState(state: ChatState, groups: Iterable<string>, storedCount: (group: string) => number): ChatState {
  let compacted = state;
  for (const name of groups) {
    const group = compacted.groups[name];
    if (!group) continue;
    const moved = Math.min(group.tail.count, storedCount(name) - group.stored);
    if (moved <= 0) continue;
    if (compacted === state) compacted = { groups: dict(Object.entries(state.groups)), sessions: state.sessions, requests: state.requests };
    (compacted.groups as Record<string, Group>)[name] = { ...group, stored: group.stored + moved, tail: group.tail.withoutFirst(moved) };
  }
  return compacted;
}

/** Sessions joined through `server`: after it restarts they no longer exist, and must leave. */
export function orphanedSessions(state: ChatState, server: ServerId): string[] {
  const orphans: string[] = [];
  for (const group of Object.values(state.groups)) {
    for (const [session, member] of Object.entries(group.members)) if (member.server === server) orphans.push(session);
  }
  return orphans;
}

/** A message as people and JSON see it: its id written "<ts>.<sender>", and the server it was appended through. */
export interface PlainMessage {
  readonly id: string;
  readonly user: string;
  readonly server: number;
  readonly text: string;
  readonly likes: readonly string[];
}

/** The state with each group's whole history as one list, read from the store: for people, JSON and comparisons (tools/inspect, tests). */
export function plainChatState(
  state: ChatState,
  stored: StoredHistory,
): { groups: Record<string, { name: string; members: Record<string, Member>; messages: PlainMessage[] }>; sessions: Record<string, string>; requests: Record<string, Record<string, OriginalRequest>> } {
  const plain = ({ message: m, likes }: ShownMessage): PlainMessage => ({ id: formatMessageId(m), user: m.user, server: m.sender, text: m.text, likes });
  const groups = dict(
    Object.entries(state.groups).map(([name, group]) => [name, { name, members: dict(Object.entries(group.members)), messages: messageRange(group, 0, messageCount(group), stored).map(plain) }] as const),
  );
  const requests = dict(Object.entries(state.requests).map(([user, log]) => [user, plainRequests(log)] as const));
  return { groups, sessions: dict(Object.entries(state.sessions)), requests };
}

/** A user's remembered request ids, each with its first message's id and the rule it broke if refused. */
function plainRequests(log: RequestLog): Record<string, OriginalRequest> {
  const plain = dict<OriginalRequest>();
  for (const bucket of log.buckets) {
    for (const [rid, id] of Object.entries(bucket.ids)) {
      const refused = bucket.refused?.[rid];
      plain[rid] = refused === undefined ? { id } : { id, refused };
    }
  }
  return plain;
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
