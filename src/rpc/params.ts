/**
 * The parameters of every client RPC method, as schemas: a request whose
 * parameters do not match is answered with a JSON-RPC "invalid params" error
 * naming the parameter and the rule, and never reaches the chat service.
 * A schema's input is what the method map (protocol.ts) says a client sends.
 */
import { z } from 'zod';
import { doneBelowSchema, groupNameSchema, messageIdSchema, messageTextSchema, requestIdSchema, userNameSchema } from '../chat/operations.js';
import { RpcError } from './jsonRpc.js';
import { maxHistoryPage, RpcErrors, type ChatMethod, type ChatMethods } from './protocol.js';

const noParams = z.strictObject({}).optional();
/** A client's causal token: the highest message timestamp it has seen (the number before the dot of a message id). */
const requestId = requestIdSchema.optional();
const doneBelow = doneBelowSchema.optional();
/** Answer only once the operation is stable, with its outcome in the final order. */
const wait = z.literal('stable', { error: 'the only value is "stable"' }).describe('"stable": answer once the operation is final, with its outcome (applied, or refused and the rule)').optional();
const after = z.number().int('must be a whole number').min(0, 'must be at least 0').describe('the highest message timestamp this client has seen (on any server): the operation is ordered after it').optional();

export const paramSchemas = {
  user: z.strictObject({ name: userNameSchema }),
  join: z.strictObject({ group: groupNameSchema, after }),
  leave: z.strictObject({ after }).optional(),
  append: z.strictObject({ text: messageTextSchema, after, wait, requestId, doneBelow }),
  like: z.strictObject({ id: messageIdSchema, after, wait, requestId, doneBelow }),
  unlike: z.strictObject({ id: messageIdSchema, after, wait, requestId, doneBelow }),
  history: z
    .strictObject({
      group: groupNameSchema.optional(),
      after,
      from: z.number().int('must be a whole number').min(1, 'messages are numbered from 1').optional(),
      since: messageIdSchema.optional(),
      before: messageIdSchema.optional(),
      count: z.number().int('must be a whole number').min(1, 'must be at least 1').max(maxHistoryPage, `at most ${maxHistoryPage} messages a page`).optional(),
    })
    .optional(),
  groups: noParams,
  view: noParams,
  'rpc.discover': noParams,
} as const satisfies { [M in ChatMethod]: z.ZodType<unknown, ChatMethods[M]['params']> };

/** The parameters of a method once checked (message ids read into (ts, sender)). */
export type ParamsOf<M extends ChatMethod> = z.output<(typeof paramSchemas)[M]>;

/** The parameters of `method`, checked; throws the JSON-RPC error a client sees. */
export function parseParams<M extends ChatMethod>(method: M, params: unknown): ParamsOf<M> {
  const result = paramSchemas[method].safeParse(params ?? undefined);
  if (result.success) return result.data as ParamsOf<M>;
  const first = result.error.issues[0];
  const param = first.code === 'unrecognized_keys' ? first.keys[0] : first.path[0];
  const problems = result.error.issues.map((issue) => {
    const key = issue.path[0];
    if (issue.code === 'unrecognized_keys') return `${method}: unknown parameter${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    if (key === undefined) return `${method}: params must be an object with named parameters`;
    if (issue.code === 'invalid_type' && !hasKey(params, key)) return `${method}: missing parameter "${String(key)}"`;
    return `${paramLabels[String(key)] ?? `"${String(key)}"`}: ${issue.message}`;
  });
  const data = { rule: first.code === 'unrecognized_keys' ? 'unknown-parameter' : param === undefined ? 'named-parameters' : first.message, ...(param === undefined ? {} : { param: String(param) }) };
  throw new RpcError(RpcErrors.invalidParams, `invalid ${problems.join('; ')}`, data);
}

/** How errors name each parameter. */
const paramLabels: Record<string, string> = { name: 'user name', group: 'group name', text: 'message', id: 'message id', from: 'from', count: 'count', since: 'since', before: 'before', after: 'after', requestId: 'request id', doneBelow: 'doneBelow' };

function hasKey(params: unknown, key: PropertyKey | undefined): boolean {
  return typeof params === 'object' && params !== null && key !== undefined && Object.hasOwn(params, key);
}
