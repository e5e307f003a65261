/**
 * Client request ids (docs/rpc.md, "Retries"): the first operation that
 * carried a user's request id takes effect (or is refused by a rule); any
 * later copy of it is refused as `duplicate-request`, so a client's retry,
 * on the same server or another, is applied once.
 *
 * A user's ids are remembered in buckets, the oldest bucket forgotten whole:
 * so a request changes one small bucket, never a list of a thousand (which
 * immer would copy, or walk element by element on a shift, every time).
 */
import type { Draft } from 'immer';
import { dict, type RequestBucket, type RequestLog } from './model.js';
import type { ChatOp } from './operations.js';

/** A user's request ids remembered: at least this many of the latest (at most a bucket more); a retry after more newer requests may be applied again. */
export const maxRequestsPerUser = 1000;
const requestBucketSize = 100;
const requestBuckets = Math.ceil(maxRequestsPerUser / requestBucketSize) + 1;

/** The first operation that carried a request id: its message id, and the rule it broke if it had no effect. */
export interface OriginalRequest {
  readonly id: string;
  readonly refused?: string;
}

/** A request: the user whose id it is and the id. */
export interface Request {
  readonly user: string;
  readonly rid: string;
}

/** The request an operation carries, if any (appends, likes and unlikes may carry one). */
export function requestOf(op: ChatOp): Request | undefined {
  if (op.op === 'join' || op.op === 'leave' || op.rid === undefined) return undefined;
  return { user: op.user, rid: op.rid };
}

/** The first operation that carried this request, if the state remembers it. */
export function originalRequest(requests: Readonly<Record<string, RequestLog>>, { user, rid }: Request): OriginalRequest | undefined {
  const buckets = requests[user]?.buckets ?? [];
  for (let i = buckets.length - 1; i >= 0; i--) {
    const id = buckets[i].ids[rid];
    if (id === undefined) continue;
    const refused = buckets[i].refused?.[rid];
    return refused === undefined ? { id } : { id, refused };
  }
  return undefined;
}

/** Remember a request's first message id (and the rule it broke): in the newest bucket, opening a new one when it is full and dropping the oldest past requestBuckets. */
export function rememberRequest(buckets: Draft<RequestBucket>[], rid: string, id: string, refused: string | undefined): void {
  if (buckets.length === 0 || buckets[buckets.length - 1].size >= requestBucketSize) {
    buckets.push({ size: 0, ids: dict() });
    if (buckets.length > requestBuckets) buckets.shift();
  }
  const bucket = buckets[buckets.length - 1];
  bucket.ids[rid] = id;
  if (refused !== undefined) (bucket.refused ??= dict())[rid] = refused;
  bucket.size++;
}

/** A user's remembered request ids, each with its first message's id and the rule it broke if refused (for people and JSON). */
export function plainRequests(log: RequestLog): Record<string, OriginalRequest> {
  const plain = dict<OriginalRequest>();
  for (const bucket of log.buckets) {
    for (const [rid, id] of Object.entries(bucket.ids)) {
      const refused = bucket.refused?.[rid];
      plain[rid] = refused === undefined ? { id } : { id, refused };
    }
  }
  return plain;
}
