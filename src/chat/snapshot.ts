/**
 * The chat part of a snapshot, written and read in one format (version 3):
 *
 *   {"version":3,"chat":{"groups":{...},"sessions":{...},"requests":{...}},"order":{...}}
 *
 * `chat` is the stable chat state (each group's stored count, members,
 * unstored tail and likes), `order` the hash chain over the stable order
 * (node/application.ts). Older snapshots are migrated here, and only here:
 * version 2 (a stream's request ids as a dictionary per bucket, not an
 * array), and those written before the version existed (the chat state
 * without a wrapper, groups holding their whole history with each message's
 * likes, and a user's request ids as one flat list). Anything else is
 * refused with a message.
 */
import { parseMessageId } from '../broadcast/types.js';
import { Edit } from './edit.js';
import { likeChunkOf } from './likes.js';
import { dict, emptyChatState, type ChatState, type Group, type Likes, type Member, type RequestBucket, type RequestStream, type StreamBucket, type UserRequests } from './model.js';
import { maxRequestsPerUser, rememberRequest, streamBucketSize } from './requests.js';
import { Tail, type ChatMessage } from './tail.js';

export const chatSnapshotVersion = 3;
/** Versions read: this one and the one before it. */
const readableVersions: readonly unknown[] = [2, chatSnapshotVersion];

/** What a snapshot holds of the chat: the stable state, and the order digest's state (opaque here). */
export interface ChatSnapshot {
  readonly version: typeof chatSnapshotVersion;
  readonly chat: ChatState;
  readonly order: unknown;
}

/** A snapshot's chat part read back; an unreadable one is an Error naming what is wrong. */
export function readChatSnapshot(saved: unknown): { chat: ChatState; order: unknown } | Error {
  if (saved === undefined) return { chat: emptyChatState, order: undefined };
  const v = saved as { version?: unknown; chat?: unknown; order?: unknown } | null;
  if (typeof v !== 'object' || v === null) return new Error('the chat part of the snapshot is not an object');
  if (v.version !== undefined && !readableVersions.includes(v.version)) return new Error(`the chat part of the snapshot has version ${JSON.stringify(v.version)}; this Chorus reads versions ${readableVersions.join(' and ')} (and older unversioned snapshots)`);
  if (isChatStateJson(v.chat)) return { chat: restoreChatState(v.chat), order: v.order };
  // Unversioned and unwrapped: the oldest snapshots were the chat state itself.
  if (v.version === undefined && isChatStateJson(saved)) return { chat: restoreChatState(saved), order: undefined };
  return new Error('the chat part of the snapshot has no chat state (groups and sessions)');
}

/** The chat state as a snapshot holds it. */
interface ChatStateJson {
  readonly groups: Readonly<Record<string, GroupJson>>;
  readonly sessions: Readonly<Record<string, string>>;
  /** Absent in snapshots from before request ids. */
  readonly requests?: Readonly<Record<string, UserRequestsJson | FlatRequestLog>>;
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

/** A user's request log as a snapshot holds it: a stream's buckets as arrays (version 3) or dictionaries by n (version 2). */
interface UserRequestsJson {
  readonly buckets: readonly RequestBucket[];
  readonly streams?: Readonly<Record<string, Omit<RequestStream, 'buckets'> & { readonly buckets: Readonly<Record<string, StreamBucket | RequestBucket>> }>>;
}

/** A user's request ids as snapshots held them before the buckets. */
interface FlatRequestLog {
  readonly ids: Readonly<Record<string, string>>;
  readonly refused?: Readonly<Record<string, string>>;
  readonly order: readonly string[];
}

function isChatStateJson(value: unknown): value is ChatStateJson {
  const v = value as { groups?: unknown; sessions?: unknown; requests?: unknown } | null;
  return typeof v === 'object' && v !== null && typeof v.groups === 'object' && v.groups !== null && typeof v.sessions === 'object' && v.sessions !== null && (v.requests === undefined || typeof v.requests === 'object');
}

/**
 * A state read back from JSON, with its dictionaries made prototype-free
 * again. A group that holds its whole history (from before the history
 * store) gets it as its tail, to be stored by the caller, and its likes as
 * the like table.
 */
export function restoreChatState(saved: ChatStateJson): ChatState {
  return {
    groups: dict(Object.entries(saved.groups).map(([name, group]) => [name, restoreGroup(group)] as const)),
    sessions: dict(Object.entries(saved.sessions)),
    requests: dict(Object.entries(saved.requests ?? {}).map(([user, log]) => [user, restoreRequestLog(log)] as const)),
  };
}

function restoreGroup(group: GroupJson): Group {
  const members = dict(Object.entries(group.members));
  const old = group.history?.chunks ?? group.chunks;
  if (!old) return { name: group.name, members, stored: group.stored ?? 0, tail: Tail.of(group.tail ?? []), likes: restoreLikes(group.likes ?? {}) };
  const messages = old.flat();
  const likes: Record<string, Record<string, readonly string[]>> = dict();
  messages.forEach((m, n) => {
    if (m.likes && m.likes.length > 0) (likes[likeChunkOf(n)] ??= dict())[n] = m.likes;
  });
  return { name: group.name, members, stored: 0, tail: Tail.of(messages.map(restoreMessage)), likes };
}

function restoreRequestLog(log: UserRequestsJson | FlatRequestLog): UserRequests {
  if ('buckets' in log) {
    const streams = log.streams && dict(Object.entries(log.streams).map(([name, stream]) => [name, { ...stream, buckets: dict(Object.entries(stream.buckets).map(([key, bucket]) => [key, restoreStreamBucket(bucket, Number(key))] as const)) }] as const));
    return { buckets: log.buckets.map(restoreBucket), ...(streams ? { streams } : {}) };
  }
  // The flat log: its latest ids, oldest first, into buckets.
  const edit = new Edit();
  const buckets = edit.made<RequestBucket[]>([]);
  for (const rid of log.order.slice(-maxRequestsPerUser)) rememberRequest(buckets, rid, log.ids[rid], log.refused?.[rid], edit);
  return { buckets };
}

/** A stream's bucket `key`; from version 2, its dictionary of ids by n made an array. */
function restoreStreamBucket(b: StreamBucket | RequestBucket, key: number): StreamBucket {
  const refused = b.refused ? { refused: dict(Object.entries(b.refused)) } : {};
  if (Array.isArray(b.ids)) return { size: b.size, ids: [...(b.ids as readonly (string | null)[])], ...refused };
  const ids: (string | null)[] = [];
  for (const [n, id] of Object.entries(b.ids as Readonly<Record<string, string>>)) {
    const i = Number(n) - key * streamBucketSize;
    while (ids.length < i) ids.push(null);
    ids[i] = id;
  }
  return { size: b.size, ids, ...refused };
}

function restoreBucket(b: RequestBucket): RequestBucket {
  return { size: b.size, ids: dict(Object.entries(b.ids)), ...(b.refused ? { refused: dict(Object.entries(b.refused)) } : {}) };
}

function restoreLikes(likes: Likes): Likes {
  return dict(Object.entries(likes).map(([chunk, users]) => [chunk, dict(Object.entries(users))] as const));
}

/** Messages identified by "<ts>.<sender>" (the oldest snapshots) are read into the pair. */
function restoreMessage(m: OldMessage): ChatMessage {
  const { ts, sender } = typeof m.id === 'string' ? (parseMessageId(m.id) ?? { ts: 0, sender: 0 }) : m;
  return { ts, sender, user: m.user, text: m.text };
}
