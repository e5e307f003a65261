/**
 * The chat as the RPC layer sees it: submit an operation, ask the judge,
 * read the shown state and the view, hear about changes. A narrow port, so
 * that the RPC service reaches neither into the node nor into the replica.
 */
import type { Message, ServerId } from '../broadcast/types.js';
import type { ChatState } from '../chat/model.js';
import { orphanedSessions } from '../chat/model.js';
import { encodeOp, type ChatOp } from '../chat/operations.js';
import type { Judgement, OperationRefusal } from '../chat/rules.js';
import type { Node, SubmitOutcome } from '../node/node.js';
import type { ChatApplication, ChatChange } from './chatApplication.js';
import type { StoredHistory } from './historyStore.js';

export interface ChatPort {
  /** The server this port belongs to. */
  readonly server: ServerId;
  /** Broadcast an operation, ordered after timestamp `after`; `outcome` learns when it is durable here (its message gives its id) or why it never will be. */
  submit(op: ChatOp, outcome: SubmitOutcome, after?: number): void;
  /** Whether `op` would take effect on the shown state now, and if not, the rule it breaks. */
  judge(op: ChatOp): Judgement;
  /** The state clients are shown: stable, then tentative, in the total order. */
  shown(): ChatState;
  /** Where the shown state's groups read their stored messages (groupQueries.ts). */
  readonly history: StoredHistory;
  /** The servers this one hears from now. */
  view(): readonly ServerId[];
  /** The stable point of the shown state: every message in it with a timestamp at or below it is final. */
  stableTs(): number;
  /** This server's Lamport clock. */
  clock(): number;
  /** This server holds every message (of every sender) with a timestamp at or below this. */
  holdsAllUpTo(): number;
  /** Once message m (an operation submitted here) is stable: undefined if it took effect, else the rule it broke. */
  whenStable(m: Message, done: (refusal: OperationRefusal | undefined) => void): void;
  /** Called after every change of the shown state or the view, saying which; returns the unsubscribe. */
  onChange(listener: (change: ChatChange) => void): () => void;
}

export function chatPort(node: Node, app: ChatApplication): ChatPort {
  return {
    server: node.id,
    submit: (op, outcome, after) => node.submit(encodeOp(op), outcome, after),
    judge: (op) => app.judge(op),
    shown: () => app.shown(),
    history: app.store,
    view: () => node.view,
    stableTs: () => node.appliedStableTs,
    clock: () => node.protocol.clock,
    holdsAllUpTo: () => Math.min(...node.protocol.tsVector),
    whenStable: (m, done) => app.whenStable(m, done),
    onChange: (listener) => app.onChange(listener),
  };
}

/**
 * After a restart the sessions joined through this server are gone: their
 * users leave (docs/spec.md section 4). Once the recovery's first step has
 * completed, so that the application holds the recovered state.
 */
export function leaveOrphanedSessions({ node, port }: { readonly node: Node; readonly port: ChatPort }): void {
  const ignore = { confirmed: () => undefined, refused: () => undefined };
  node.afterCompleted(() => {
    for (const session of orphanedSessions(port.shown(), port.server)) port.submit({ op: 'leave', session }, ignore);
  });
}
