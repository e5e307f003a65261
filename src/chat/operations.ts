/**
 * Chat operations (docs/spec.md section 4): each is the payload of one broadcast
 * message, applied by every daemon in the total order. A session is one
 * client connection; the server a member joined through is the sender of
 * the join's broadcast message.
 */
import { z } from 'zod';
import { formatMessageId, parseMessageId, type Message, type MessageId } from '../broadcast/types.js';
import { hasControlCharacter, jsonString } from '../jsonText.js';

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
  /** The client's request id: a retry with the same id (by the same user, on any server) has no further effect. */
  readonly rid?: string;
  /** With a stream request id ("<stream>:<n>"): the client holds the answers of the stream's requests below this (requests.ts). */
  readonly done?: number;
}

export interface LikeOp {
  readonly op: 'like' | 'unlike';
  readonly user: string;
  readonly group: string;
  /** The liked message: its broadcast message's (ts, sender). In the payload it is written "<ts>.<sender>". */
  readonly message: MessageId;
  readonly rid?: string;
  readonly done?: number;
}

export type ChatOp = JoinOp | LeaveOp | AppendOp | LikeOp;

export const limits = {
  userChars: 32,
  groupChars: 64,
  textChars: 2000,
  requestIdChars: 64,
} as const;

const printableNoSpace = /^[^\s\p{Cc}\p{Cf}]+$/u;
const printable = /^[^\p{Cc}\p{Cf}\u2028\u2029]+$/u;
/**
 * Whether s has min to max characters (code points), as a person counts them.
 * A string has at most as many code points as UTF-16 units, so only a long
 * one is counted (every message is checked by every daemon).
 */
const charsWithin = (s: string, min: number, max: number): boolean => s.length >= min && (s.length <= max || [...s].length <= max);
const aString = { error: 'must be a string' };

/** The rules for names and text, checked where a client's request enters a daemon (rpc/params.ts). */
export const userNameSchema = z
  .string(aString)
  .refine((s) => charsWithin(s, 1, limits.userChars), { error: `a user name has 1-${limits.userChars} characters`, abort: true })
  .refine((s) => printableNoSpace.test(s), { error: 'a user name has printable characters and no spaces' })
  .describe(`1-${limits.userChars} printable characters, no spaces`);

export const groupNameSchema = z
  .string(aString)
  .refine((s) => charsWithin(s, 1, limits.groupChars), { error: `a group name has 1-${limits.groupChars} characters`, abort: true })
  .refine((s) => printable.test(s) && s.trim() === s, { error: 'a group name has printable characters and no leading or trailing spaces' })
  .describe(`1-${limits.groupChars} printable characters, no leading or trailing spaces`);

export const messageTextSchema = z
  .string(aString)
  .refine((s) => s.trim().length > 0, { error: 'a message cannot be empty', abort: true })
  .refine((s) => charsWithin(s, 0, limits.textChars), { error: `a message has at most ${limits.textChars} characters`, abort: true })
  .refine((s) => printable.test(s), { error: 'a message cannot contain control characters' })
  .describe(`1-${limits.textChars} characters as people count them, not blank, no control or format characters`);

export const requestIdSchema = z
  .string(aString)
  .refine((s) => s.length >= 1 && s.length <= limits.requestIdChars && printableNoSpace.test(s), { error: `a request id has 1-${limits.requestIdChars} printable characters and no spaces` })
  .describe(`a client-chosen id (1-${limits.requestIdChars} printable characters, e.g. a UUID): a retry with the same id, on any server, is applied once`);

/** What a client says it holds answers for: every request of its request id's stream numbered below this. */
export const doneBelowSchema = z
  .number()
  .int('must be a whole number')
  .min(1, 'must be at least 1')
  .max(Number.MAX_SAFE_INTEGER, 'must be a safe integer')
  .describe('with a request id "<stream>:<n>": every request of that stream numbered below this has its answer at the client, so the servers may forget them (a later copy of one is still refused)');

/** A message id as clients write it, "<ts>.<sender>", read into its (ts, sender). */
export const messageIdSchema = z
  .string(aString)
  .describe('"<ts>.<server>", e.g. "42.3"')
  .transform((text, ctx) => parseMessageId(text) ?? (ctx.addIssue({ code: 'custom', message: 'a message id looks like "<ts>.<server>", e.g. "42.3"' }), z.NEVER));

/**
 * Each message's operation, decoded once and kept on the message itself,
 * under a key no other module knows: a message that a late one lands before
 * is applied again (replica.ts), and parsing its payload again would cost
 * more than the operation itself. (Kept in a WeakMap, the weak entry of
 * every message cost the garbage collector more than the parse saved:
 * ephemeron lookups, barriers and clearing were about 4 % of a flooded
 * cluster's CPU.) A frozen message is decoded each time.
 */
const decodedOp = Symbol('operation');
/** The payload decoded with its operation: a copy of the message with another payload (spread, say) carries the key but decodes its own. */
type Decoded = Message & { [decodedOp]?: { readonly payload: string; readonly op: ChatOp | undefined } };

/** The operation a broadcast message carries; undefined if it carries none. */
export function operationOf(m: Message): ChatOp | undefined {
  const known = (m as Decoded)[decodedOp];
  if (known !== undefined && known.payload === m.payload) return known.op;
  const op = decodeOp(m.payload);
  if (Object.isExtensible(m)) (m as Decoded)[decodedOp] = { payload: m.payload, op };
  return op;
}

/** Decode a payload into an operation; undefined if it is not one (ignored by every daemon alike). */
export function decodeOp(payload: string): ChatOp | undefined {
  return encodedAppend(payload) ?? decodeJson(payload);
}

const appendHead = '{"op":"append","session":"';
const afterSession = '","user":"';
const afterUser = '","group":"';
const afterGroup = '","text":"';
const afterText = '","rid":"';
const afterRid = '","done":';
/** A safe integer of at least 1 as JSON.stringify writes it. */
const doneDigits = /^[1-9][0-9]{0,14}$/;

/**
 * An append exactly as encodeOp writes it, read by slicing: JSON.parse of a
 * 270-character append took 1.0-1.1 µs here, at every server for every
 * message, the most of any single step of the chat path. Only a payload
 * that reads the same either way is taken: the fields in encodeOp's order
 * with no space between, no escape (no backslash anywhere) and no control
 * character; anything else (undefined) goes to JSON.parse. The text is a
 * slice of the payload (see sharedText).
 */
function encodedAppend(payload: string): AppendOp | undefined {
  if (!startsAt(payload, appendHead, 0) || payload.includes('\\') || hasControlCharacter(payload)) return undefined;
  const session = stringAt(payload, appendHead.length);
  const user = session && stringAfter(payload, session.end, afterSession);
  const group = user && stringAfter(payload, user.end, afterUser);
  const text = group && stringAfter(payload, group.end, afterGroup);
  if (!text) return undefined;
  if (closes(payload, text.end)) return { op: 'append', session: session.value, user: user.value, group: group.value, text: text.value };
  const rid = stringAfter(payload, text.end, afterText);
  if (!rid) return undefined;
  // Each object written out whole: a spread followed by more fields cost 1 µs a field here (V8 11), more than the rest of the reading.
  if (closes(payload, rid.end)) return { op: 'append', session: session.value, user: user.value, group: group.value, text: text.value, rid: rid.value };
  if (!startsAt(payload, afterRid, rid.end) || !payload.endsWith('}')) return undefined;
  const digits = payload.slice(rid.end + afterRid.length, -1);
  if (!doneDigits.test(digits)) return undefined;
  return { op: 'append', session: session.value, user: user.value, group: group.value, text: text.value, rid: rid.value, done: Number(digits) };
}

/** The characters from `start` to the next quote, and where that quote is. */
function stringAt(payload: string, start: number): { value: string; end: number } | undefined {
  const end = payload.indexOf('"', start);
  return end < 0 ? undefined : { value: payload.slice(start, end), end };
}

/** The string that `separator` (which ends with its opening quote) introduces at `at`. */
function stringAfter(payload: string, at: number, separator: string): { value: string; end: number } | undefined {
  return startsAt(payload, separator, at) ? stringAt(payload, at + separator.length) : undefined;
}

/** Whether the string whose closing quote is at `quote` is the payload's last field (only the object's brace follows). */
function closes(payload: string, quote: number): boolean {
  return quote === payload.length - 2 && payload.endsWith('}');
}

/** Whether `part` is found at `at` (as startsWith says, in a quarter of its time here: indexOf stops at the first match). */
function startsAt(payload: string, part: string, at: number): boolean {
  return payload.indexOf(part, at) === at;
}

function decodeJson(payload: string): ChatOp | undefined {
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
      if (!str('session') || !str('user') || !str('group') || !str('text') || !ridOk(v)) return undefined;
      v.text = sharedText(payload, v.text as string);
      return v as unknown as AppendOp;
    case 'like':
    case 'unlike': {
      const message = str('message') ? parseMessageId(v.message as string) : undefined;
      if (!str('user') || !str('group') || !message || !ridOk(v)) return undefined;
      return { op: v.op, user: v.user as string, group: v.group as string, message, ...(v.rid === undefined ? {} : { rid: v.rid as string }), ...(v.done === undefined ? {} : { done: v.done as number }) };
    }
    default:
      return undefined;
  }
}

/**
 * The text as a slice of the payload (when its characters appear there as
 * they are; any place with the same characters will do): a daemon keeps the
 * payload while the message is unstable, and V8 slices a string without
 * copying it, so the text costs no second copy for the garbage collector to
 * carry through every young-generation collection it survives (a third of
 * what an append kept alive).
 */
function sharedText(payload: string, text: string): string {
  const at = payload.indexOf(text);
  return at < 0 ? text : payload.slice(at, at + text.length);
}

function ridOk(v: Record<string, unknown>): boolean {
  return (v.rid === undefined || typeof v.rid === 'string') && (v.done === undefined || (typeof v.rid === 'string' && Number.isSafeInteger(v.done) && (v.done as number) >= 1));
}

export function encodeOp(op: ChatOp): string {
  if (op.op === 'append') return encodeAppend(op);
  if (op.op === 'like' || op.op === 'unlike') return JSON.stringify({ ...op, message: formatMessageId(op.message) });
  return JSON.stringify(op);
}

/** An append in the one form encodedAppend reads (JSON.stringify of the fields in this order, written by hand). */
function encodeAppend(op: AppendOp): string {
  const rid = op.rid === undefined ? '' : `,"rid":${jsonString(op.rid)}`;
  const done = op.done === undefined ? '' : `,"done":${JSON.stringify(op.done)}`;
  return `{"op":"append","session":${jsonString(op.session)},"user":${jsonString(op.user)},"group":${jsonString(op.group)},"text":${jsonString(op.text)}${rid}${done}}`;
}
