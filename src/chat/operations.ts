/**
 * Chat operations (SPEC section 4): each is the payload of one broadcast
 * message, applied by every daemon in the total order. A session is one
 * client connection; the server a member joined through is the sender of
 * the join's broadcast message.
 */

export interface JoinOp {
  readonly op: 'join';
  readonly session: string;
  readonly user: string;
  readonly group: string;
}

export interface LeaveOp {
  readonly op: 'leave';
  readonly session: string;
}

export interface AppendOp {
  readonly op: 'append';
  readonly session: string;
  readonly user: string;
  readonly group: string;
  readonly text: string;
}

export interface LikeOp {
  readonly op: 'like' | 'unlike';
  readonly user: string;
  readonly group: string;
  /** Id of the liked message: its broadcast message's "<ts>.<sender>". */
  readonly message: string;
}

export type ChatOp = JoinOp | LeaveOp | AppendOp | LikeOp;

export const limits = {
  userChars: 32,
  groupChars: 64,
  textChars: 2000,
} as const;

/** A message id: the (ts, sender) of the broadcast message that appended it. */
export function messageId(ts: number, sender: number): string {
  return `${ts}.${sender}`;
}

const printableNoSpace = /^[^\s\p{Cc}\p{Cf}]+$/u;
const printable = /^[^\p{Cc}\p{Cf}\u2028\u2029]+$/u;

/** Why a user name is invalid, or undefined. */
export function checkUserName(user: string): string | undefined {
  if (user.length < 1 || [...user].length > limits.userChars) return `a user name has 1-${limits.userChars} characters`;
  if (!printableNoSpace.test(user)) return 'a user name has printable characters and no spaces';
  return undefined;
}

export function checkGroupName(group: string): string | undefined {
  if (group.length < 1 || [...group].length > limits.groupChars) return `a group name has 1-${limits.groupChars} characters`;
  if (!printable.test(group) || group.trim() !== group) return 'a group name has printable characters and no leading or trailing spaces';
  return undefined;
}

export function checkText(text: string): string | undefined {
  if (text.trim().length === 0) return 'a message cannot be empty';
  if ([...text].length > limits.textChars) return `a message has at most ${limits.textChars} characters`;
  if (!printable.test(text)) return 'a message cannot contain control characters';
  return undefined;
}

/** Decode a payload into an operation; undefined if it is not one (ignored by every daemon alike). */
export function decodeOp(payload: string): ChatOp | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const str = (key: string) => typeof v[key] === 'string';
  switch (v.op) {
    case 'join':
      return str('session') && str('user') && str('group') ? (v as unknown as JoinOp) : undefined;
    case 'leave':
      return str('session') ? (v as unknown as LeaveOp) : undefined;
    case 'append':
      return str('session') && str('user') && str('group') && str('text') ? (v as unknown as AppendOp) : undefined;
    case 'like':
    case 'unlike':
      return str('user') && str('group') && str('message') ? (v as unknown as LikeOp) : undefined;
    default:
      return undefined;
  }
}

export function encodeOp(op: ChatOp): string {
  return JSON.stringify(op);
}
