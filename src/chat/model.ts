/**
 * The chat state (docs/spec.md section 4): groups with their members, the
 * unstored tail of each group's history and its likes; which group each
 * session is in; each user's request ids. Immutable: the reducer
 * (reducer.ts) makes a new state from an old one and a batch of operations.
 *
 * A group's history is split: its first `stored` messages are in the
 * history store (server/historyStore.ts: stable, in the segment files), the
 * rest in its tail. The store only grows, so a state always means the same
 * messages by its first `stored`: only those.
 */
import type { Tail } from './tail.js';

/** Users who like message n of a group (0-based), for the liked ones only, in chunks of messages by n (likes.ts). */
export type Likes = Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;

/** A user's request ids (requests.ts): plain ids, the recent ones in buckets, oldest first; stream ids by stream. */
export interface UserRequests {
  readonly buckets: readonly RequestBucket[];
  readonly streams?: Readonly<Record<string, RequestStream>>;
}

/**
 * The requests of one client's stream ("<stream>:<n>"): every n below
 * `doneBelow` was answered to the client (it said so), so a copy of one is
 * refused; those at or above it are remembered, by n, in buckets of n.
 */
export interface RequestStream {
  readonly doneBelow: number;
  /** The id of the message that carried the stream's latest request: how recently it was used. */
  readonly last?: string;
  /** Requests remembered (at or above doneBelow). */
  readonly open: number;
  /** By n / streamBucketSize (requests.ts), rounded down. */
  readonly buckets: Readonly<Record<string, StreamBucket>>;
}

/**
 * Some of a stream's requests, numbered from the bucket's first n: at
 * n % streamBucketSize the id of the message that carried request n first
 * (null, or past the end: none). An array, so that a batch copies a bucket
 * for a few microseconds less than a dictionary of ids cost (0.3 µs a key).
 */
export interface StreamBucket {
  readonly size: number;
  readonly ids: readonly (string | null)[];
  /** The rule each refused one broke, by n (absent: it took effect). */
  readonly refused?: Readonly<Record<string, string>>;
}

/** Some of a user's request ids: each with the id ("<ts>.<sender>") of the message that carried it first. */
export interface RequestBucket {
  readonly size: number;
  readonly ids: Readonly<Record<string, string>>;
  /** The rule each refused one broke (absent: it took effect): a retry's answer is the original outcome. */
  readonly refused?: Readonly<Record<string, string>>;
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
  /** The group's first `stored` messages are in the history store. */
  readonly stored: number;
  /** The messages after them, in total order (a value immer does not draft: tail.ts). */
  readonly tail: Tail;
  readonly likes: Likes;
}

export interface ChatState {
  readonly groups: Readonly<Record<string, Group>>;
  /** The group each session is in. */
  readonly sessions: Readonly<Record<string, string>>;
  /** Request ids by user, so that a client's retry is applied once. */
  readonly requests: Readonly<Record<string, UserRequests>>;
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

/** Messages in the group's history, stored and in its tail. */
export function messageCount(group: Group | undefined): number {
  return group ? group.stored + group.tail.count : 0;
}

/**
 * The state with each named group's tail moved into the store as far as the
 * store holds it (`storedCount`): the store holds a group's stable messages,
 * which come first in every state's order, so those are what the tail
 * starts with.
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
export function orphanedSessions(state: ChatState, server: number): string[] {
  const orphans: string[] = [];
  for (const group of Object.values(state.groups)) {
    for (const [session, member] of Object.entries(group.members)) if (member.server === server) orphans.push(session);
  }
  return orphans;
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
