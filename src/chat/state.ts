/**
 * The chat state and how one operation changes it. Deterministic: the same
 * operations in the same order give the same state at every daemon. An
 * operation that no longer fits the state when its turn comes (a second like
 * by the same user, an unlike without a like) changes nothing, everywhere.
 */
import { produce, type Draft } from 'immer';
import type { Message } from '../broadcast/types.js';
import { decodeOp, messageId, type ChatOp } from './operations.js';

export interface ChatMessage {
  readonly id: string;
  readonly user: string;
  /** The server the message was appended through. */
  readonly server: number;
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
  readonly messages: readonly ChatMessage[];
}

export interface ChatState {
  readonly groups: Readonly<Record<string, Group>>;
  /** The group each session is in. */
  readonly sessions: Readonly<Record<string, string>>;
}

export const emptyChatState: ChatState = { groups: {}, sessions: {} };

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
      const group = (state.groups[op.group] ??= { name: op.group, members: {}, messages: [] });
      group.members[op.session] = { user: op.user, server: m.sender };
      state.sessions[op.session] = op.group;
      return;
    }
    case 'leave':
      return leave(state, op.session);
    case 'append': {
      const group = (state.groups[op.group] ??= { name: op.group, members: {}, messages: [] });
      group.messages.push({ id: messageId(m.ts, m.sender), user: op.user, server: m.sender, text: op.text, likes: [] });
      return;
    }
    case 'like':
    case 'unlike': {
      const target = findMessage(state.groups[op.group], op.message);
      if (!target) return;
      const at = target.likes.indexOf(op.user);
      if (op.op === 'like' && at < 0 && target.user !== op.user) target.likes.push(op.user);
      if (op.op === 'unlike' && at >= 0) target.likes.splice(at, 1);
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

export function findMessage<T extends ChatMessage | Draft<ChatMessage>>(group: { messages: readonly T[] } | undefined, id: string): T | undefined {
  if (!group) return undefined;
  // Ids grow with position (the total order), so search from the end, where new likes usually go.
  for (let i = group.messages.length - 1; i >= 0; i--) if (group.messages[i].id === id) return group.messages[i];
  return undefined;
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
