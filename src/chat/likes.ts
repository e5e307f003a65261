/**
 * Likes (docs/spec.md section 4): one like per user per message; not one's
 * own message; only a user who liked a message can remove the like.
 *
 * A group's likes are kept apart from its messages, by the message's
 * 0-based place in the group's history, in chunks of `likeChunk` places:
 * they change after a message is stored, and a like copies one chunk.
 */
import type { Draft } from 'immer';
import { compareOrder, formatMessageId, type MessageId } from '../broadcast/types.js';
import { dict, type Group } from './model.js';

const likeChunk = 256;

export type LikeRefusal = 'own-message' | 'already-liked' | 'not-liked';

/** Why `user` may not like (or, with like = false, unlike) the message; undefined if they may. */
export function likeRefusal(message: { readonly user: string; readonly likes: readonly string[] }, user: string, like: boolean): LikeRefusal | undefined {
  const liked = message.likes.includes(user);
  if (!like) return liked ? undefined : 'not-liked';
  if (message.user === user) return 'own-message';
  return liked ? 'already-liked' : undefined;
}

/**
 * A stored message a like names: its 0-based place in the group's history
 * and its author. Stored messages are final, so neither ever changes. The
 * reducer reads no files: whoever holds the store looks these up and
 * passes them in (server/chatApplication.ts).
 */
export interface StoredTarget {
  readonly index: number;
  readonly user: string;
}

/** Stored messages that likes name, by targetKey. */
export type StoredTargets = ReadonlyMap<string, StoredTarget>;

export const noStoredTargets: StoredTargets = new Map();

export function targetKey(group: string, id: MessageId): string {
  return `${formatMessageId(id)} ${group}`;
}

/** The message a like names, as the rule judges it. */
export interface LikeTarget {
  readonly index: number;
  readonly user: string;
  readonly likes: readonly string[];
}

/** The message with this id in the group: in its tail, or among its stored messages (from `stored`). */
export function findTarget(group: Group | Draft<Group>, id: MessageId, stored: StoredTargets): LikeTarget | undefined {
  const first = group.tail.first();
  if (first && compareOrder(id, first) >= 0) {
    const found = group.tail.find(id);
    return found && target(group, group.stored + found.index, found.message.user);
  }
  const known = stored.get(targetKey(group.name, id));
  return known && known.index < group.stored ? target(group, known.index, known.user) : undefined;
}

function target(group: Group | Draft<Group>, index: number, user: string): LikeTarget {
  return { index, user, likes: likesAt(group, index) };
}

export function likesAt(group: Group | Draft<Group>, index: number): readonly string[] {
  return group.likes[likeChunkOf(index)]?.[index] ?? [];
}

export function setLikes(group: Draft<Group>, index: number, users: string[]): void {
  const chunk = (group.likes[likeChunkOf(index)] ??= dict());
  if (users.length > 0) chunk[index] = users;
  else delete chunk[index];
}

export function likeChunkOf(index: number): string {
  return String(Math.floor(index / likeChunk));
}

/** The 0-based places before `before` whose likes differ between two versions of a group (only chunks that changed are read). */
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
