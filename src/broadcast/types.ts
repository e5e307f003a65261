/**
 * The vocabulary of the broadcast layer (docs/spec.md section 2). Servers are
 * numbered 1..N; vectors and matrices are indexed by `id - 1`.
 */
export type ServerId = number;

/**
 * A message's place in the total order, and its name outside the broadcast
 * layer (a chat message's id). Unique: a sender's timestamps strictly increase.
 */
export interface MessageId {
  readonly ts: number;
  readonly sender: ServerId;
}

/** One broadcast message. Identified by (sender, seq); ordered by (ts, sender). Never changes once sent. */
export interface Message extends MessageId {
  readonly seq: number;
  readonly payload: string;
}

/**
 * Several messages, from any senders: originals and retransmissions alike
 * (the wire layer splits them into datagrams). It carries the sender's
 * status too, taken after its messages, so a server sending data to a peer
 * needs no separate status to it.
 */
export interface DataPacket {
  readonly type: 'data';
  readonly from: ServerId;
  readonly messages: readonly Message[];
  readonly status?: StatusVectors;
}

/**
 * What a status reports. `seqVector[s-1]` is the highest seq from server s
 * that the sender holds durably with none missing (for s = the sender: its
 * own last sequence number). `tsVector[s-1]` is a bound: every message from s
 * that the sender has not received has a larger timestamp (for s = the
 * sender: its Lamport clock). The two vectors are one consistent snapshot.
 */
export interface StatusVectors {
  readonly seqVector: readonly number[];
  readonly tsVector: readonly number[];
}

/** Heartbeat, acknowledgement and anti-entropy in one: the sender's StatusVectors. */
export interface StatusPacket extends StatusVectors {
  readonly type: 'status';
  readonly from: ServerId;
}

/** "Please retransmit sender's messages fromSeq..toSeq": sent to any server that holds them. */
export interface NackPacket {
  readonly type: 'nack';
  readonly from: ServerId;
  readonly sender: ServerId;
  readonly fromSeq: number;
  readonly toSeq: number;
}

export type Packet = DataPacket | StatusPacket | NackPacket;

/** Records the engine asks to be appended to the journal. */
export type JournalRecord =
  /** A message accepted in sender order (own or a peer's). */
  | { readonly t: 'msg'; readonly m: Message }
  /** The timestamp vector after a step; its own entry is the Lamport clock. */
  | { readonly t: 'ts'; readonly tsVector: readonly number[] }
  /**
   * The seq and timestamp matrices, recorded at most once per status interval
   * when they changed. Losing the latest is safe: older rows only delay
   * garbage collection until peers report again.
   */
  | { readonly t: 'acks'; readonly seqMatrix: readonly (readonly number[])[]; readonly tsMatrix: readonly (readonly number[])[] };

export interface Outbound {
  readonly to: ServerId;
  readonly packet: Packet;
}

/** The total order: by timestamp, ties broken by sender. The one comparison of message ids. */
export function compareOrder(a: MessageId, b: MessageId): number {
  return a.ts - b.ts || a.sender - b.sender;
}

/** A message id as people and clients see it: "<ts>.<sender>", e.g. "42.3". */
export function formatMessageId(id: MessageId): string {
  return `${id.ts}.${id.sender}`;
}

/** The id that "<ts>.<sender>" names, or undefined if the text is not one. */
export function parseMessageId(text: string): MessageId | undefined {
  const match = /^([1-9][0-9]{0,15})\.([1-9][0-9]?)$/.exec(text);
  if (!match) return undefined;
  const ts = Number(match[1]);
  return Number.isSafeInteger(ts) ? { ts, sender: Number(match[2]) } : undefined;
}
