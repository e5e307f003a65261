/**
 * Reading a group as clients and tools see it: its messages by place, with
 * their likes, from the unstored tail in the state and from the history
 * store below it; where two versions of a group first differ (pushes); and
 * the whole state as plain JSON (tools/inspect, tests, the simulator).
 */
import { compareOrder, formatMessageId, type MessageId } from '../broadcast/types.js';
import { likesAt } from '../chat/likes.js';
import { dict, messageCount, type ChatState, type Group, type Member } from '../chat/model.js';
import { plainRequests, type OriginalRequest } from '../chat/requests.js';
import type { ChatMessage } from '../chat/tail.js';
import type { StoredHistory } from './historyStore.js';

/** A message of a group's history: its 1-based place, and who likes it. */
export interface PlacedMessage {
  readonly n: number;
  readonly message: ChatMessage;
  readonly likes: readonly string[];
}

/** The message with this id in the group: in its tail, or among its stored messages. */
export function findMessage(group: Group, id: MessageId, stored: StoredHistory): PlacedMessage | undefined {
  const first = group.tail.first();
  if (first && compareOrder(id, first) >= 0) {
    const found = group.tail.find(id);
    return found && placed(group, group.stored + found.index, found.message);
  }
  const found = stored.find(group.name, id, group.stored);
  return found && placed(group, found.index, found.message);
}

/** Messages from .. to-1 (0-based) of the group's history: the stored ones read from the store. */
export function messageRange(group: Group | undefined, from: number, to: number, stored: StoredHistory): PlacedMessage[] {
  if (!group) return [];
  const end = Math.min(to, messageCount(group));
  const start = Math.max(0, from);
  if (start >= end) return [];
  return plainRange(group, start, end, stored).map((message, i) => placed(group, start + i, message));
}

/** The last `count` messages of the group. */
export function lastMessages(group: Group | undefined, count: number, stored: StoredHistory): PlacedMessage[] {
  const total = messageCount(group);
  return messageRange(group, total - count, total, stored);
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

function plainRange(group: Group, from: number, to: number, stored: StoredHistory): ChatMessage[] {
  if (from >= to) return [];
  const fromStore = from < group.stored ? stored.read(group.name, from, Math.min(to, group.stored)) : [];
  const fromTail = to > group.stored ? group.tail.slice(Math.max(0, from - group.stored), to - group.stored) : [];
  return [...fromStore, ...fromTail];
}

function placed(group: Group, index: number, message: ChatMessage): PlacedMessage {
  return { n: index + 1, message, likes: likesAt(group, index) };
}

/** A message as people and JSON see it: its id written "<ts>.<sender>", and the server it was appended through. */
export interface PlainMessage {
  readonly id: string;
  readonly user: string;
  readonly server: number;
  readonly text: string;
  readonly likes: readonly string[];
}

export interface PlainChatState {
  groups: Record<string, { name: string; members: Record<string, Member>; messages: PlainMessage[] }>;
  sessions: Record<string, string>;
  requests: Record<string, Record<string, OriginalRequest>>;
}

/** The state with each group's whole history as one list, read from the store: for people, JSON and comparisons (tools/inspect, tests). */
export function plainChatState(state: ChatState, stored: StoredHistory): PlainChatState {
  const plain = ({ message: m, likes }: PlacedMessage): PlainMessage => ({ id: formatMessageId(m), user: m.user, server: m.sender, text: m.text, likes });
  const groups = dict(
    Object.entries(state.groups).map(([name, group]) => [name, { name, members: dict(Object.entries(group.members)), messages: messageRange(group, 0, messageCount(group), stored).map(plain) }] as const),
  );
  const requests = dict(Object.entries(state.requests).map(([user, log]) => [user, plainRequests(log)] as const));
  return { groups, sessions: dict(Object.entries(state.sessions)), requests };
}
