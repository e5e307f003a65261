/**
 * The one judge of an operation: whether it takes effect on a state, and if
 * not, the rule it breaks. The reducer applies what it says in the total
 * order (reducer.ts); the RPC service asks it before broadcasting, so that
 * a client hears of a broken rule at once; the outcome a client waits for
 * (wait "stable") is what it said when the operation was applied at its
 * final place.
 */
import type { Draft } from 'immer';
import { findTarget, likeRefusal, type LikeRefusal, type LikeTarget, type StoredTargets } from './likes.js';
import type { ChatState } from './model.js';
import type { ChatOp } from './operations.js';
import { isRepeated, requestOf } from './requests.js';

/** Why an operation had no effect in the total order. */
export type OperationRefusal = LikeRefusal | 'message-unknown' | 'duplicate-request' | 'not-an-operation';

/** What the judge says: the rule broken, or that it takes effect (for a like, on this message). */
export type Judgement = { readonly refusal: OperationRefusal } | { readonly refusal?: undefined; readonly target?: LikeTarget };

const takesEffect: Judgement = {};

/** Judge `op` against `state`; `stored` names the stored messages its like may target. */
export function judge(state: ChatState | Draft<ChatState>, op: ChatOp, stored: StoredTargets): Judgement {
  const request = requestOf(op);
  if (request && isRepeated(state.requests, request)) return { refusal: 'duplicate-request' };
  if (op.op !== 'like' && op.op !== 'unlike') return takesEffect;
  const group = state.groups[op.group];
  const target = group && findTarget(group, op.message, stored);
  if (!target) return { refusal: 'message-unknown' };
  const refusal = likeRefusal(target, op.user, op.op === 'like');
  return refusal ? { refusal } : { target };
}
