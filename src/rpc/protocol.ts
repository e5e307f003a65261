/**
 * The client protocol: JSON-RPC 2.0 over WebSocket, on each daemon's client
 * port. Shared by the server and the terminal client. See docs/rpc.md, "Client RPC".
 */
import { z } from 'zod';

/** JSON-RPC's own error codes, then Chorus's. */
export const RpcErrors = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  noUser: 4001,
  noGroup: 4002,
  unknownMessage: 4003,
  ownMessage: 4004,
  alreadyLiked: 4005,
  notLiked: 4006,
  busy: 4007,
  unavailable: 4008,
  storageFailed: 4009,
  tooManyConnections: 4010,
  rateLimited: 4011,
  requestTooLarge: 4012,
  noSuchGroup: 4013,
  renameInGroup: 4014,
  tooManyOpenRequests: 4015,
  requestDone: 4016,
} as const;

/**
 * Each Chorus error's stable name, sent as the error's `data.rule` (invalid
 * parameters send `data.param` and `data.rule` too): what a program matches
 * on, while the message is for people.
 */
export const errorRules: Readonly<Record<number, string>> = {
  [RpcErrors.noUser]: 'user-required',
  [RpcErrors.noGroup]: 'group-required',
  [RpcErrors.unknownMessage]: 'message-unknown',
  [RpcErrors.ownMessage]: 'own-message',
  [RpcErrors.alreadyLiked]: 'already-liked',
  [RpcErrors.notLiked]: 'not-liked',
  [RpcErrors.busy]: 'busy',
  [RpcErrors.unavailable]: 'unavailable',
  [RpcErrors.storageFailed]: 'storage-failed',
  [RpcErrors.tooManyConnections]: 'too-many-connections',
  [RpcErrors.rateLimited]: 'rate-limited',
  [RpcErrors.requestTooLarge]: 'request-too-large',
  [RpcErrors.noSuchGroup]: 'group-unknown',
  [RpcErrors.renameInGroup]: 'rename-in-group',
  [RpcErrors.tooManyOpenRequests]: 'too-many-open-requests',
  [RpcErrors.requestDone]: 'request-done',
};

/** Limits on what one daemon's client port accepts (chorusd --max-connections etc.). */
export interface RpcLimits {
  /** Open client connections; one more is told so and closed. */
  readonly maxConnections: number;
  /** Requests per second per connection (a burst of as many is allowed); more are answered with an error. */
  readonly requestsPerSecond: number;
  /** Bytes in one request frame; a larger one is answered with an error (16 times larger closes the connection). */
  readonly maxFrameBytes: number;
  /**
   * Web pages (origins such as "http://127.0.0.1:7300") whose scripts may
   * connect. A browser names the page's origin in every WebSocket handshake;
   * any other origin is refused (403), so a page the user happens to visit
   * cannot chat in their name. Programs send no Origin and are not affected.
   */
  readonly allowedOrigins?: readonly string[];
  /**
   * Stream request ids ("<stream>:<n>") one user may have whose answers the
   * client has not acknowledged (doneBelow): each is remembered by every
   * server until then. A request past it is refused (4015) until the client
   * acknowledges; a client that never does is refused, not remembered forever.
   */
  readonly maxOpenRequestsPerUser?: number;
}

export const defaultMaxOpenRequestsPerUser = 10_000;

export const defaultRpcLimits: RpcLimits = { maxConnections: 1000, requestsPerSecond: 500, maxFrameBytes: 64 * 1024, allowedOrigins: [], maxOpenRequestsPerUser: defaultMaxOpenRequestsPerUser };

/** WebSocket close code for "try again later" (RFC 6455 section 7.4.1, registered 1013). */
export const closeTryAgainLater = 1013;
/** WebSocket close code for "going away": the server stops cleanly (RFC 6455 section 7.4.1). */
export const closeGoingAway = 1001;

/*
 * What the methods answer, as schemas: the types below are read from them,
 * and rpc.discover gives them to clients as JSON Schema (discovery.ts), so
 * the documentation a program reads is the shape the server sends.
 */
export const messageEntrySchema = z.object({
  n: z.number().int().describe("the message's place in the group's history, from 1"),
  id: z.string().describe('"<ts>.<sender>": the id of the broadcast message that carries it'),
  user: z.string(),
  text: z.string(),
  likes: z.number().int(),
  likedBy: z.array(z.string()),
  stable: z.boolean().describe('final: no message can still be ordered before it (false: tentative, its place may still change after a heal)'),
});
export type MessageEntry = z.infer<typeof messageEntrySchema>;

export const groupSnapshotSchema = z.object({
  group: z.string(),
  participants: z.array(z.string()).describe("users joined through servers in the answering server's current view"),
  total: z.number().int().describe("messages in the group's whole history"),
  messages: z.array(messageEntrySchema).describe('the last 10 (join, pushes) or one page of the history (history)'),
  complete: z.boolean().optional().describe('history with after: true when this server holds every message up to after (the client\'s own writes included); false when it still lacked some after waiting'),
});
export type GroupSnapshot = z.infer<typeof groupSnapshotSchema>;

/** What changed since the session's previous push (or its join): enough to keep an exact copy of the history without re-reading it. */
export const groupChangesSchema = z.object({
  from: z.number().int().describe('the first place (1-based) where the history differs from what the previous push (or the join, or a page of history read since) showed; total + 1 when no message moved or was added'),
  messages: z.array(messageEntrySchema).optional().describe(`the history from "from" to its end, when that is at most ${500} messages; absent: read it with history`),
  likes: z.array(z.object({ n: z.number().int(), id: z.string(), likedBy: z.array(z.string()) })).describe('messages before "from" whose likes changed'),
});
export type GroupChanges = z.infer<typeof groupChangesSchema>;

/** The "group" notification a session in a group gets whenever what it shows changes. */
export const groupPushSchema = groupSnapshotSchema.extend({
  version: z.number().int().describe("this session's push count: 1, 2, ... (the join's answer is version 0)"),
  stableTs: z.number().int().describe('every message with a timestamp (the number before the dot of its id) at or below this is stable'),
  changes: groupChangesSchema,
});
export type GroupPush = z.infer<typeof groupPushSchema>;

export const groupSummarySchema = z.object({
  group: z.string(),
  total: z.number().int().describe('messages in its history'),
  participants: z.array(z.string()).describe("users joined through servers in the answering server's current view"),
});
export type GroupSummary = z.infer<typeof groupSummarySchema>;

export const viewResultSchema = z.object({
  server: z.number().int().describe('the answering server'),
  view: z.array(z.object({ id: z.number().int(), host: z.string(), udpPort: z.number().int(), clientPort: z.number().int() })).describe('the servers it hears from now'),
});
export type ViewResult = z.infer<typeof viewResultSchema>;

/** What a mutating method answers once the operation is durable on the answering server (or, asked to wait, once it is stable). */
export const confirmationSchema = z.object({
  id: z.string().describe('"<ts>.<sender>": the id of the broadcast message that carries the operation'),
  tentative: z.boolean().describe('true: sequenced and durable here, its place in the total order (and so its effect) not final yet'),
  outcome: z.enum(['applied', 'refused']).optional().describe('with wait "stable": whether the operation took effect in the final order'),
  rule: z.string().optional().describe('with outcome "refused": the rule it broke there (e.g. already-liked, or duplicate-request: the request id was applied before)'),
  repeated: z.boolean().optional().describe('true: this server already knew the request id; the answer is the original operation\'s, nothing new was broadcast'),
});
export type Confirmation = z.infer<typeof confirmationSchema>;

/** One method as rpc.discover describes it: params and result as JSON Schema. */
export interface MethodDescription {
  readonly name: string;
  readonly description: string;
  readonly params: unknown;
  readonly result: unknown;
}

/** Messages shown after a join and on every change. */
export const recentMessages = 10;

/** Messages in one page of `history`: a long history is read a page at a time, never in one frame. */
export const maxHistoryPage = 500;

/** A method's parameters and result, as a client sends and receives them. */
export interface MethodShape {
  readonly params?: object;
  readonly result: unknown;
}

/** The client port's methods: the server implements exactly these (server.ts), clients call them (client/connection.ts). */
export interface ChatMethods {
  user: { params: { name: string }; result: { user: string } };
  join: { params: { group: string; after?: number }; result: GroupSnapshot };
  leave: { params?: { after?: number }; result: Confirmation };
  append: { params: { text: string; after?: number; wait?: 'stable'; requestId?: string; doneBelow?: number }; result: Confirmation };
  like: { params: { id: string; after?: number; wait?: 'stable'; requestId?: string; doneBelow?: number }; result: Confirmation };
  unlike: { params: { id: string; after?: number; wait?: 'stable'; requestId?: string; doneBelow?: number }; result: Confirmation };
  /** Messages from..from+count-1 (default: from 1, a whole page) of `group`, or of the session's group; read from the history segments, without joining. */
  history: { params?: { group?: string; from?: number; since?: string; before?: string; count?: number; after?: number }; result: GroupSnapshot };
  /** Every group this server knows, by name, without joining any. */
  groups: { params?: Record<string, never>; result: { groups: GroupSummary[] } };
  view: { params?: Record<string, never>; result: ViewResult };
  /** Every method with its parameters and result as JSON Schema. */
  'rpc.discover': { params?: Record<string, never>; result: { methods: MethodDescription[] } };
}

/** What each method does, for rpc.discover (and people). */
export const methodDescriptions: Readonly<Record<ChatMethod, string>> = {
  user: 'set the session\'s user name (not while in a group)',
  join: 'join a group, creating it if needed, leaving the one before; answers the group with its last 10 messages, then pushes "group" notifications on every change',
  leave: 'leave the group',
  append: 'append a message to the group; answered once it is durable on this server',
  like: 'like a message of the group (not one\'s own, once per user)',
  unlike: 'remove one\'s like from a message',
  history: 'a page of a group\'s history (the session\'s group, or any group by name without joining): count messages from place from, or after message since, or before message before',
  groups: 'every group this server knows, by name',
  view: 'the servers this server hears from now',
  'rpc.discover': 'this list: every method with its parameters and result as JSON Schema',
};

/** The result schema of each method (the parameters' are in params.ts). */
export const resultSchemas = {
  user: z.object({ user: z.string() }),
  join: groupSnapshotSchema,
  leave: confirmationSchema,
  append: confirmationSchema,
  like: confirmationSchema,
  unlike: confirmationSchema,
  history: groupSnapshotSchema,
  groups: z.object({ groups: z.array(groupSummarySchema) }),
  view: viewResultSchema,
  'rpc.discover': z.object({
    methods: z.array(z.object({ name: z.string(), description: z.string(), params: z.unknown().describe('JSON Schema'), result: z.unknown().describe('JSON Schema') })),
  }),
} as const satisfies { [M in ChatMethod]: z.ZodType<ChatMethods[M]['result']> };

export type ChatMethod = keyof ChatMethods;
