/**
 * The chat state machine: a batch of ordered broadcast messages applied to
 * a state gives a new state, deterministically, so the same messages in the
 * same order give the same state at every daemon. An operation that no
 * longer fits the state when its turn comes (a second like by the same
 * user, a retry of a request already applied) changes nothing, everywhere;
 * the judge (rules.ts) says which, and the batch reports it.
 *
 * Pure: what the rules need is in the state or passed in (the stored
 * messages likes name); nothing is read from or written to files here.
 */
import { produce, type Draft } from 'immer';
import { formatMessageId, type Message } from '../broadcast/types.js';
import { invariant } from '../errors.js';
import { setLikes, type LikeTarget, type StoredTargets } from './likes.js';
import { dict, type ChatState, type Group } from './model.js';
import { operationOf, type ChatOp } from './operations.js';
import { editableLog, markDone, remember, requestOf } from './requests.js';
import { judge, type OperationRefusal } from './rules.js';
import { Edit } from './edit.js';
import { Tail } from './tail.js';

export interface AppliedBatch {
  readonly state: ChatState;
  /** Why each message of the batch had no effect (undefined: it took effect), by its place in the batch. */
  readonly refusals: readonly (OperationRefusal | undefined)[];
}

/** Apply broadcast messages, in order, to `state`: one pass, one copy of what they change. */
export function applyBatch(state: ChatState, messages: readonly Message[], stored: StoredTargets): AppliedBatch {
  const refusals: (OperationRefusal | undefined)[] = new Array(messages.length);
  if (messages.length === 0) return { state, refusals };
  const edit = new Edit();
  const next = produce(state, (draft) => {
    for (let i = 0; i < messages.length; i++) refusals[i] = applyMessage(draft, messages[i], edit, stored);
    edit.finish();
  });
  return { state: next, refusals };
}

function applyMessage(state: Draft<ChatState>, m: Message, edit: Edit, stored: StoredTargets): OperationRefusal | undefined {
  const op = operationOf(m);
  if (!op) return 'not-an-operation';
  const request = requestOf(op);
  // The log the batch changes is in the state before the judge reads it there.
  const log = request && editableLog(state.requests, request.user, edit);
  const judged = judge(state, op, stored);
  if (request && log) {
    // The first copy of a request is remembered with its outcome, which a retry's answer repeats.
    if (judged.refusal !== 'duplicate-request') remember(log, request.rid, formatMessageId(m), judged.refusal, edit);
    if (request.doneBelow !== undefined) markDone(log, request.rid, request.doneBelow, edit);
  }
  if (judged.refusal) return judged.refusal;
  applyOp(state, op, m, edit, judged.target);
  return undefined;
}

/** Apply an operation the judge let through (a like or unlike on `target`). */
function applyOp(state: Draft<ChatState>, op: ChatOp, m: Message, edit: Edit, target: LikeTarget | undefined): void {
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
      const tail = group.tail;
      const appended = tail.appended({ ts: m.ts, sender: m.sender, user: op.user, text: op.text }, edit);
      // After a batch's first append to a group its tail is the batch's own, changed in place: no assignment through the draft (each cost an immer trap per message).
      if (appended !== tail) group.tail = appended;
      return;
    }
    case 'like':
    case 'unlike': {
      invariant(target !== undefined, `the judge let ${op.op} ${formatMessageId(op.message)} through without its target`);
      setLikes(state.groups[op.group], target.index, op.op === 'like' ? [...target.likes, op.user] : target.likes.filter((user) => user !== op.user));
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

function newGroup(name: string): Draft<Group> {
  return { name, members: dict(), stored: 0, tail: Tail.empty, likes: dict() };
}
