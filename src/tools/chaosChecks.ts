/**
 * What tools/chaos checks in one server's final history, against what its
 * scripted clients were told: every confirmed append there once with its
 * text, every append resent with its request id there exactly once, and
 * each user's likes as their confirmed like/unlike operations give them,
 * applied in the total order by the chat's rule.
 */
import { compareOrder, parseMessageId } from '../broadcast/types.js';
import { likeRefusal } from '../chat/likes.js';

export interface AckedAppend {
  readonly id: string;
  readonly text: string;
}

export interface LikeOp {
  /** The like or unlike operation's own id: its place in the total order. */
  readonly id: string;
  readonly user: string;
  readonly target: string;
  /** The target's text as the client saw it. */
  readonly targetText: string;
  readonly like: boolean;
  /** Its request id. */
  readonly rid: string;
  /** Sent again after its connection died: its place in the order is its first copy's, which the final state's request log names. */
  readonly resent?: boolean;
}

/** The id of the message that first carried a user's request id, as the final state remembers it (its recent requests only). */
export type FirstCarrier = (user: string, rid: string) => string | undefined;

/** What one scripted client was told. */
export interface ClientRecord {
  readonly appends: readonly AckedAppend[];
  /** Texts of appends resent with their request id and acknowledged. */
  readonly resent: readonly string[];
  readonly likes: readonly LikeOp[];
  /** "<user> <target>" pairs with a like or unlike whose outcome is unknown (the connection died mid-call). */
  readonly doubtful: ReadonlySet<string>;
}

export interface FinalMessage {
  readonly id: string;
  readonly user: string;
  readonly text: string;
  readonly likes: readonly string[];
}

/** Every way the history breaks what the clients were told, as sentences; empty when it keeps every promise. */
export function historyViolations(history: readonly FinalMessage[], clients: readonly ClientRecord[], firstCarrier: FirstCarrier): string[] {
  const byId = new Map(history.map((m) => [m.id, m]));
  const texts = new Map<string, number>();
  for (const m of history) texts.set(m.text, (texts.get(m.text) ?? 0) + 1);
  const violations: string[] = [];
  for (const [text, count] of texts) if (count > 1) violations.push(`"${text}" is in the history ${count} times`);
  for (const client of clients) {
    for (const a of client.appends) {
      const m = byId.get(a.id);
      if (!m || m.text !== a.text) violations.push(`confirmed append ${a.id} ("${a.text}") is ${m ? `"${m.text}"` : 'missing'}`);
    }
    // Resent with its request id and acknowledged: in the history once, whether the lost server had taken it or not.
    for (const text of client.resent) if (texts.get(text) !== 1) violations.push(`resent append "${text}" is in the history ${texts.get(text) ?? 0} times`);
  }
  violations.push(...likeViolations(byId, texts, clients, firstCarrier));
  return violations;
}

function likeViolations(byId: ReadonlyMap<string, FinalMessage>, texts: ReadonlyMap<string, number>, clients: readonly ClientRecord[], firstCarrier: FirstCarrier): string[] {
  const violations: string[] = [];
  const doubtful = new Set(clients.flatMap((c) => [...c.doubtful]));
  // A resent like takes effect (or not) at its first copy's place; if the state no longer remembers which, its pair is in doubt.
  const placed = clients.flatMap((c) => c.likes).flatMap((op) => {
    if (!op.resent) return [op];
    const first = firstCarrier(op.user, op.rid);
    if (first === undefined) doubtful.add(`${op.user} ${op.target}`);
    return first === undefined ? [] : [{ ...op, id: first }];
  });
  const order = (id: string) => parseMessageId(id) ?? { ts: 0, sender: 0 };
  const ops = placed.sort((x, y) => compareOrder(order(x.id), order(y.id)));
  const expected = new Map<string, boolean>();
  for (const op of ops) {
    const pair = `${op.user} ${op.target}`;
    const target = byId.get(op.target);
    if (!target) {
      // The copy an append's retry made, which its original preceded in the order: it never entered the history, so the like has no effect.
      if (texts.get(op.targetText) !== 1) violations.push(`${op.user} ${op.like ? 'liked' : 'unliked'} ${op.target} ("${op.targetText}"), which is not in the history and is no copy of a message that is`);
      continue;
    }
    const liked = expected.get(pair) ?? false;
    if (!likeRefusal({ user: target.user, likes: liked ? [op.user] : [] }, op.user, op.like)) expected.set(pair, op.like);
  }
  for (const [pair, liked] of expected) {
    if (doubtful.has(pair)) continue;
    const [user, target] = pair.split(' ');
    const actual = byId.get(target)!.likes.includes(user);
    if (actual !== liked) violations.push(`${user} ${liked ? 'likes' : 'does not like'} ${target} by its confirmed operations, the state says otherwise`);
  }
  return violations;
}
