/**
 * The chat as the RPC layer (and the simulator's clients) see it: submit an
 * operation, read the shown state and the view, hear about changes. A narrow
 * port, so that neither reaches into the node or the replica.
 */
import type { Message, ServerId } from '../broadcast/types.js';
import type { Node, SubmitOutcome } from '../node/node.js';
import type { ChatApp } from './chatApp.js';
import type { StoredHistory } from './historyStore.js';
import { encodeOp, type ChatOp } from './operations.js';
import { orphanedSessions, type ChatState, type OperationRefusal } from './state.js';

export interface ChatPort {
  /** The server this port belongs to. */
  readonly server: ServerId;
  /** Broadcast an operation, ordered after timestamp `after`; `outcome` learns when it is durable here (its message gives its id) or why it never will be. */
  submit(op: ChatOp, outcome: SubmitOutcome, after?: number): void;
  /** The state clients are shown: stable, then tentative, in the total order. */
  shown(): ChatState;
  /** Where the shown state's groups read their stored messages (state.ts: messageRange, findMessage). */
  readonly history: StoredHistory;
  /** The servers this one hears from now. */
  view(): readonly ServerId[];
  /** The stable point: every message with a timestamp at or below it is final. */
  stableTs(): number;
  /** This server's Lamport clock. */
  clock(): number;
  /** This server holds every message (of every sender) with a timestamp at or below this. */
  holdsAllUpTo(): number;
  /** Once message m (an operation submitted here) is stable: undefined if it took effect, else the rule it broke. */
  whenStable(m: Message, done: (refusal: OperationRefusal | undefined) => void): void;
  /** Called after every change of the shown state or the view; returns the unsubscribe. */
  onChange(listener: () => void): () => void;
}

export function chatPort(node: Node, app: ChatApp): ChatPort {
  return {
    server: node.id,
    submit: (op, outcome, after) => node.submit(encodeOp(op), outcome, after),
    shown: () => app.replica.shown,
    history: app.store,
    view: () => node.view,
    stableTs: () => node.protocol.stableTs,
    clock: () => node.protocol.clock,
    holdsAllUpTo: () => Math.min(...node.protocol.tsVector),
    whenStable: (m, done) => app.replica.watchStable(m, done),
    onChange: (listener) => app.onChange(listener),
  };
}

/**
 * After a restart the sessions joined through this server are gone: their
 * users leave (SPEC section 4). Once the recovery's first step has completed,
 * so that the application holds the recovered state.
 */
export function leaveOrphanedSessions(node: Node, port: ChatPort): void {
  const ignore = { confirmed: () => undefined, refused: () => undefined };
  node.afterCompleted(() => {
    for (const session of orphanedSessions(port.shown(), port.server)) port.submit({ op: 'leave', session }, ignore);
  });
}
