/**
 * The engine's settings, their defaults, and the one place a server's
 * options are put together (daemon, simulator and inspector alike).
 */
import type { EngineParts } from './parts.js';
import type { ServerId } from './types.js';

export interface EngineOptions {
  readonly me: ServerId;
  readonly serverCount: number;
  /** Period of status packets (heartbeat and anti-entropy) when nothing else prompts one. */
  readonly statusIntervalMs: number;
  /** After accepting data, a status (acknowledgement) goes out at most this long after the previous one. */
  readonly ackDelayMs: number;
  /** A server not heard from for this long leaves the view. */
  readonly viewTimeoutMs: number;
  /** A NACK still unanswered after this long is sent again, to the next server that holds the range. */
  readonly nackRetryMs: number;
  /** Largest range one NACK asks for; a longer gap is fetched in several rounds. */
  readonly maxNackMessages: number;
  /** Most messages retransmitted in answer to one NACK; the rest of the range is asked for again. */
  readonly maxRetransmitMessages: number;
  /**
   * Flow control: at most this many own messages not yet held by every server
   * in the view. Broadcasts past it wait in a queue; servers outside the view
   * do not count, so a partition never blocks a side.
   */
  readonly sendWindowMessages: number;
  /** Broadcasts waiting for the send window; past this, `broadcast` answers 'busy'. */
  readonly maxQueuedBroadcasts: number;
  /** Out-of-order messages buffered per sender ahead of a gap; further ones are dropped and fetched later. */
  readonly receiveWindowMessages: number;
  /** The engine's parts (parts.ts): the protocol's own unless a test plants a bug in one. */
  readonly parts?: Partial<EngineParts>;
}

export const defaultEngineTimers = {
  statusIntervalMs: 100,
  // 0: an acknowledgement goes out in the step that made the data durable. Ten
  // alternated pairs at 1,000 appends/s against 1 ms: stable here p50 6.8 ->
  // 6.05 ms (lower in seven), the same CPU per append and flooding throughput.
  ackDelayMs: 0,
  viewTimeoutMs: 1500,
  nackRetryMs: 30,
} as const;

export type EngineTimers = { -readonly [K in keyof typeof defaultEngineTimers]: number };

export const defaultEngineLimits = {
  maxNackMessages: 2000,
  maxRetransmitMessages: 2000,
  // 1,000 rather than 4,000: as fast in the bench's protocol-only and chat
  // phases, with steps (and so event-loop stalls) about half as long.
  sendWindowMessages: 1000,
  maxQueuedBroadcasts: 20000,
  receiveWindowMessages: 10000,
} as const;

/** Server `me`'s options: the defaults, then whatever the caller sets. */
export function engineOptions(me: ServerId, serverCount: number, overrides: Partial<Omit<EngineOptions, 'me' | 'serverCount'>> = {}): EngineOptions {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, value]) => value !== undefined));
  return { me, serverCount, ...defaultEngineTimers, ...defaultEngineLimits, ...defined };
}

/** The largest payload, in bytes as a JSON string, of one broadcast message (a chat operation needs under 9 KiB). */
export const maxPayloadBytes = 16 * 1024;

/** A lone UTF-16 surrogate: not Unicode, so UTF-8 (the wire) cannot carry it. */
const loneSurrogate = /\p{Cs}/u;

/** Whether a payload is well-formed Unicode (the wire carries UTF-8; the chat's JSON payloads always are). */
export function isUnicode(payload: string): boolean {
  return !loneSurrogate.test(payload);
}

/** Whether a payload fits one message (JSON escaping counted, as the journal stores it). */
export function payloadFits(payload: string): boolean {
  // JSON escaping at most sextuples a character (\u00XX), so most payloads need no stringify here.
  const bytes = Buffer.byteLength(payload);
  if (bytes * 6 + 2 <= maxPayloadBytes) return true;
  return bytes <= maxPayloadBytes && Buffer.byteLength(JSON.stringify(payload)) <= maxPayloadBytes;
}
