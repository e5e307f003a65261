/**
 * The vocabulary of the broadcast layer (SPEC section 2). Servers are
 * numbered 1..N; vectors and matrices are indexed by `id - 1`.
 */
export type ServerId = number;

/** One broadcast message. Identified by (sender, seq); ordered by (ts, sender). Never changes once sent. */
export interface Message {
  readonly sender: ServerId;
  readonly seq: number;
  readonly ts: number;
  readonly payload: string;
}

/** Several messages, from any senders, in one datagram: originals and retransmissions alike. */
export interface DataPacket {
  readonly type: 'data';
  readonly from: ServerId;
  readonly messages: readonly Message[];
}

/**
 * Heartbeat, acknowledgement and anti-entropy in one. `seqVector[s-1]` is the
 * highest seq from server s that `from` holds durably with none missing
 * (for s = from: its own last sequence number). `tsVector[s-1]` is a bound:
 * every message from s that `from` has not received has a larger timestamp
 * (for s = from: its Lamport clock). The two vectors are one consistent snapshot.
 */
export interface StatusPacket {
  readonly type: 'status';
  readonly from: ServerId;
  readonly seqVector: readonly number[];
  readonly tsVector: readonly number[];
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

/** Compare by the total order (ts, sender). */
export function compareOrder(a: Message, b: Message): number {
  return a.ts - b.ts || a.sender - b.sender;
}
