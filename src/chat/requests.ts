/**
 * Client request ids (docs/rpc.md, "Retries"): the first operation that
 * carried a user's request id takes effect (or is refused by a rule); any
 * later copy of it is refused as `duplicate-request`, so a client's retry,
 * on the same server or another, is applied once.
 *
 * A stream id "<stream>:<n>" (what the client session library sends) is
 * remembered until the client says it holds the answer: an operation may
 * carry `doneBelow`, "every request of this stream numbered below this was
 * answered", as Raft's client sessions do. Those below it are forgotten, and
 * a copy of one that comes later still is refused: nothing is forgotten
 * that a copy could still apply twice, however many requests a client has
 * in flight. Any other id is remembered among the user's last
 * maxRequestsPerUser plain ids.
 *
 * Ids are kept in buckets (plain ones: the oldest bucket forgotten whole;
 * stream ones: by n), so a request changes one small bucket, never a list
 * of thousands (which immer would copy, or walk element by element, every
 * time).
 */
import { isDraft, original, type Draft } from 'immer';
import { parseMessageId } from '../broadcast/types.js';
import { dict, type RequestBucket, type RequestStream, type StreamBucket, type UserRequests } from './model.js';
import type { ChatOp } from './operations.js';
import type { Edit, Mutable } from './edit.js';

/** A user's plain request ids remembered: at least this many of the latest (at most a bucket more); a retry after more newer requests may be applied again. */
export const maxRequestsPerUser = 1000;
const requestBucketSize = 100;
const requestBuckets = Math.ceil(maxRequestsPerUser / requestBucketSize) + 1;

/** The first operation that carried a request id: its message id, and the rule it broke if it had no effect. */
export interface OriginalRequest {
  readonly id: string;
  readonly refused?: string;
}

/** A request: the user whose id it is, the id, and what the client says it holds answers for. */
export interface Request {
  readonly user: string;
  readonly rid: string;
  /** With a stream id: every request of the stream numbered below this was answered. */
  readonly doneBelow?: number;
}

/** A stream id read into its stream and number. */
export interface StreamId {
  readonly stream: string;
  readonly n: number;
}

const streamIdPattern = /^([A-Za-z0-9_-]{1,40}):([1-9][0-9]{0,14})$/;

/** The id read last, and what it read as: a request's id is read four times in a row as it is applied (twice by the judge, by remember and by markDone). */
let lastRead: { readonly rid: string; readonly id: StreamId | undefined } = { rid: '', id: undefined };

/** "<stream>:<n>" (n from 1) read into its parts; undefined for a plain id. */
export function parseStreamId(rid: string): StreamId | undefined {
  if (rid === lastRead.rid) return lastRead.id;
  const match = streamIdPattern.exec(rid);
  const id = match ? { stream: match[1], n: Number(match[2]) } : undefined;
  lastRead = { rid, id };
  return id;
}

/** Streams remembered per user (requests.ts makeRoomForStream). */
export const maxStreamsPerUser = 256;

/** Requests of one stream per bucket (a snapshot's bucket keys count in these). */
export const streamBucketSize = 100;

/** The request an operation carries, if any (appends, likes and unlikes may carry one). */
export function requestOf(op: ChatOp): Request | undefined {
  if (op.op === 'join' || op.op === 'leave' || op.rid === undefined) return undefined;
  return op.done === undefined ? { user: op.user, rid: op.rid } : { user: op.user, rid: op.rid, doneBelow: op.done };
}

/** Whether a copy of this request came before: it is remembered, or its stream's client said it was answered. */
export function isRepeated(requests: Readonly<Record<string, UserRequests>>, request: Request): boolean {
  return originalRequest(requests, request) !== undefined || isDone(requests, request);
}

/** A stream request the client said it holds the answer for (so forgotten). */
export function isDone(requests: Readonly<Record<string, UserRequests>>, { user, rid }: Request): boolean {
  const id = parseStreamId(rid);
  return id !== undefined && id.n < (requests[user]?.streams?.[id.stream]?.doneBelow ?? 1);
}

/** Stream requests a user has open: remembered until the client says it holds their answers. */
export function openRequests(requests: Readonly<Record<string, UserRequests>>, user: string): number {
  let open = 0;
  for (const stream of Object.values(requests[user]?.streams ?? {})) open += stream.open;
  return open;
}

/** Of those, how many `request`'s doneBelow acknowledges (forgotten once it is applied). */
export function acknowledgedBy(requests: Readonly<Record<string, UserRequests>>, request: Request): number {
  const id = parseStreamId(request.rid);
  const stream = id && requests[request.user]?.streams?.[id.stream];
  if (!stream || request.doneBelow === undefined) return 0;
  let acknowledged = 0;
  for (const [key, bucket] of Object.entries(stream.buckets)) {
    bucket.ids.forEach((id, i) => {
      if (id !== null && Number(key) * streamBucketSize + i < request.doneBelow!) acknowledged++;
    });
  }
  return acknowledged;
}

/** The first operation that carried this request, if the state remembers it. */
export function originalRequest(requests: Readonly<Record<string, UserRequests>>, { user, rid }: Request): OriginalRequest | undefined {
  const id = parseStreamId(rid);
  if (id) return inStreamBucket(requests[user]?.streams?.[id.stream]?.buckets[streamBucketOf(id.n)], id.n);
  const buckets = requests[user]?.buckets ?? [];
  for (let i = buckets.length - 1; i >= 0; i--) {
    const original = inBucket(buckets[i], rid);
    if (original) return original;
  }
  return undefined;
}

function inBucket(bucket: RequestBucket | undefined, key: string): OriginalRequest | undefined {
  const id = bucket?.ids[key];
  if (id === undefined) return undefined;
  const refused = bucket!.refused?.[key];
  return refused === undefined ? { id } : { id, refused };
}

function inStreamBucket(bucket: StreamBucket | undefined, n: number): OriginalRequest | undefined {
  const id = bucket?.ids[n % streamBucketSize] ?? null;
  if (id === null) return undefined;
  const refused = bucket!.refused?.[n];
  return refused === undefined ? { id } : { id, refused };
}

function streamBucketOf(n: number): string {
  return String(Math.floor(n / streamBucketSize));
}

/**
 * The request log of `user` that this batch may change in place: a copy
 * put into the state the first time the batch touches it, the same object
 * after that (so the judge, reading the state, sees what the batch did).
 */
export function editableLog(requests: Draft<Record<string, UserRequests>>, user: string, edit: Edit): Mutable<UserRequests> {
  const current = requests[user];
  if (current !== undefined && edit.owns(current)) return current as Mutable<UserRequests>;
  const log = current === undefined ? edit.made<UserRequests>({ buckets: [] }) : edit.own(isDraft(current) ? (original(current) as UserRequests) : current);
  (requests as Record<string, UserRequests>)[user] = log;
  return log;
}

/** Remember a request's first message id (and the rule it broke) in the user's log. */
export function remember(log: Mutable<UserRequests>, rid: string, id: string, refused: string | undefined, edit: Edit): void {
  const streamId = parseStreamId(rid);
  if (!streamId) return rememberRequest((log.buckets = edit.own(log.buckets)), rid, id, refused, edit);
  const streams = (log.streams = log.streams ? edit.own(log.streams) : edit.made(dict<RequestStream>()));
  if (streams[streamId.stream] === undefined) makeRoomForStream(streams);
  const knownStream = streams[streamId.stream];
  const stream = (streams[streamId.stream] = knownStream ? edit.own(knownStream) : edit.made<RequestStream>({ doneBelow: 1, open: 0, buckets: edit.made(dict()) }));
  stream.last = id;
  const buckets = (stream.buckets = edit.own(stream.buckets));
  const key = streamBucketOf(streamId.n);
  const known = buckets[key];
  const bucket = (buckets[key] = known ? edit.own(known) : edit.made<StreamBucket>({ size: 0, ids: edit.made([]) }));
  // Any gap below it is filled with nulls: a JSON array holds no holes.
  const ids = (bucket.ids = edit.own(bucket.ids));
  for (let i = ids.length; i < streamId.n % streamBucketSize; i++) ids.push(null);
  ids[streamId.n % streamBucketSize] = id;
  if (refused !== undefined) ownRefused(bucket, edit)[streamId.n] = refused;
  bucket.size++;
  stream.open++;
}

/** `bucket` for this batch to change: copied, or made if there is none. */
function ownBucket(bucket: RequestBucket | undefined, edit: Edit): Mutable<RequestBucket> {
  return bucket ? edit.own(bucket) : edit.made<RequestBucket>({ size: 0, ids: edit.made(dict()) });
}

function addTo(bucket: Mutable<RequestBucket>, key: string, id: string, refused: string | undefined, edit: Edit): void {
  (bucket.ids = edit.own(bucket.ids))[key] = id;
  if (refused !== undefined) ownRefused(bucket, edit)[key] = refused;
  bucket.size++;
}

/** A bucket's (the batch's own) rules broken, for the batch to change: copied, or made if there are none. */
function ownRefused(bucket: { refused?: Readonly<Record<string, string>> }, edit: Edit): Record<string, string> {
  return (bucket.refused = bucket.refused ? edit.own(bucket.refused) : edit.made(dict<string>()));
}

/**
 * A user's streams are bounded (each ended session leaves its mark and its
 * last request, which no later one acknowledged): at the bound, the stream
 * used longest ago in the order goes. Only a copy of a request of a session
 * older than the user's maxStreamsPerUser latest could then apply again.
 */
function makeRoomForStream(streams: Record<string, RequestStream>): void {
  const names = Object.keys(streams);
  if (names.length < maxStreamsPerUser) return;
  const age = (name: string) => parseMessageId(streams[name].last ?? '')?.ts ?? 0;
  delete streams[names.reduce((a, b) => (age(b) < age(a) ? b : a))];
}

/** The client holds the answers of its stream's requests below `doneBelow`: forget them (a copy of one is refused all the same). */
export function markDone(log: Mutable<UserRequests>, rid: string, doneBelow: number, edit: Edit): void {
  const streamId = parseStreamId(rid);
  const known = streamId && log.streams?.[streamId.stream];
  if (!known || doneBelow <= known.doneBelow) return;
  const streams = (log.streams = edit.own(log.streams!));
  const stream = (streams[streamId.stream] = edit.own(known));
  stream.buckets = edit.own(stream.buckets);
  for (const b of bucketsOverlapping(stream, stream.doneBelow, doneBelow)) forget(stream, b, stream.doneBelow, doneBelow, edit);
  stream.doneBelow = doneBelow;
}

/**
 * The numbers of the buckets that may hold requests from..below-1. Every
 * request a stream holds is at or above its doneBelow (one below it is
 * refused, never remembered), so a client acknowledging one more request
 * touches one bucket, and never walks it whole.
 */
function bucketsOverlapping(stream: RequestStream, from: number, below: number): number[] {
  const first = Math.floor(from / streamBucketSize);
  const last = Math.floor((below - 1) / streamBucketSize);
  // A client that acknowledges far ahead: the buckets there are, rather than every number between.
  if (last - first > streamBucketSize) return Object.keys(stream.buckets).map(Number).filter((b) => b >= first && b <= last);
  const numbers: number[] = [];
  for (let b = first; b <= last; b++) numbers.push(b);
  return numbers;
}

/** Forget the requests from..below-1 of bucket `b` (the stream's buckets are the batch's own): the whole bucket if they cover it. */
function forget(stream: Mutable<RequestStream>, b: number, from: number, below: number, edit: Edit): void {
  const key = String(b);
  const buckets = stream.buckets as Record<string, StreamBucket>;
  const known = buckets[key];
  if (known === undefined) return;
  if ((b + 1) * streamBucketSize <= below) {
    stream.open -= known.size;
    delete buckets[key];
    return;
  }
  const bucket = (buckets[key] = edit.own(known));
  const ids = (bucket.ids = edit.own(bucket.ids));
  const refused = bucket.refused && (bucket.refused = edit.own(bucket.refused));
  for (let n = Math.max(from, b * streamBucketSize); n < below; n++) {
    const i = n % streamBucketSize;
    if ((ids[i] ?? null) === null) continue;
    ids[i] = null;
    if (refused?.[n] !== undefined) delete refused[n];
    bucket.size--;
    stream.open--;
  }
}

/** Remember a plain request's first message id (and the rule it broke): in the newest bucket, opening a new one when it is full and dropping the oldest past requestBuckets. `buckets` is the batch's own. */
export function rememberRequest(buckets: RequestBucket[], rid: string, id: string, refused: string | undefined, edit: Edit): void {
  if (buckets.length === 0 || buckets[buckets.length - 1].size >= requestBucketSize) {
    buckets.push(ownBucket(undefined, edit));
    if (buckets.length > requestBuckets) buckets.shift();
  }
  const bucket = (buckets[buckets.length - 1] = edit.own(buckets[buckets.length - 1]));
  addTo(bucket, rid, id, refused, edit);
}

/** A user's remembered request ids, each with its first message's id and the rule it broke if refused (for people and JSON). */
export function plainRequests(log: UserRequests): Record<string, OriginalRequest> {
  const plain = dict<OriginalRequest>();
  const add = (bucket: RequestBucket, name: (key: string) => string) => {
    for (const key of Object.keys(bucket.ids)) plain[name(key)] = inBucket(bucket, key)!;
  };
  for (const bucket of log.buckets) add(bucket, (rid) => rid);
  for (const [stream, { buckets }] of Object.entries(log.streams ?? {})) {
    for (const [key, bucket] of Object.entries(buckets)) {
      bucket.ids.forEach((_, i) => {
        const n = Number(key) * streamBucketSize + i;
        const original = inStreamBucket(bucket, n);
        if (original) plain[`${stream}:${n}`] = original;
      });
    }
  }
  return plain;
}
