/**
 * The client protocol: JSON-RPC 2.0 over WebSocket, on each daemon's client
 * port. Shared by the server and the terminal client. See README "Client RPC".
 */

/** Error codes beyond JSON-RPC's own (-32700 parse error, -32600 invalid request, -32601 unknown method, -32602 invalid params). */
export const RpcErrors = {
  parseError: -32700,
  invalidRequest: -32600,
  invalidParams: -32602,
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
}

export const defaultRpcLimits: RpcLimits = { maxConnections: 1000, requestsPerSecond: 500, maxFrameBytes: 64 * 1024, allowedOrigins: [] };

/** WebSocket close code for "try again later" (RFC 6455 section 7.4.1, registered 1013). */
export const closeTryAgainLater = 1013;
/** WebSocket close code for "going away": the server stops cleanly (RFC 6455 section 7.4.1). */
export const closeGoingAway = 1001;

export interface MessageView {
  /** Position in the group's history, 1-based. */
  readonly n: number;
  readonly id: string;
  readonly user: string;
  readonly text: string;
  readonly likes: number;
  readonly likedBy: readonly string[];
  /** Final: no message can still be ordered before it (false: tentative, its place may still change after a heal). */
  readonly stable: boolean;
}

export interface GroupView {
  readonly group: string;
  /** Users joined through servers in the answering daemon's current view. */
  readonly participants: readonly string[];
  /** Messages in the whole history. */
  readonly total: number;
  /** The last 10 (pushes, join), or one page of the history (history). */
  readonly messages: readonly MessageView[];
}

export interface GroupSummary {
  readonly group: string;
  /** Messages in its history. */
  readonly total: number;
  /** Users joined through servers in the answering daemon's current view. */
  readonly participants: readonly string[];
}

export interface ViewResult {
  readonly server: number;
  readonly view: readonly { readonly id: number; readonly host: string; readonly udpPort: number; readonly clientPort: number }[];
}

/** Messages shown after a join and on every change. */
export const recentMessages = 10;

/** Messages in one page of `history`: a long history is read a page at a time, never in one frame. */
export const maxHistoryPage = 500;

/** What a mutating method answers once the operation is durable on the answering server: the id ("<ts>.<sender>") of the broadcast message that carries it. */
export interface Confirmation {
  readonly id: string;
}

/** A method's parameters and result, as a client sends and receives them. */
export interface MethodShape {
  readonly params?: object;
  readonly result: unknown;
}

/** The client port's methods: the server implements exactly these (server.ts), clients call them (client/connection.ts). */
export interface ChatMethods {
  user: { params: { name: string }; result: { user: string } };
  join: { params: { group: string }; result: GroupView };
  leave: { params?: Record<string, never>; result: Confirmation };
  append: { params: { text: string }; result: Confirmation };
  like: { params: { id: string }; result: Confirmation };
  unlike: { params: { id: string }; result: Confirmation };
  /** Messages from..from+count-1 (default: from 1, a whole page) of `group`, or of the session's group; read from the history segments, without joining. */
  history: { params?: { group?: string; from?: number; count?: number }; result: GroupView };
  /** Every group this server knows, by name, without joining any. */
  groups: { params?: Record<string, never>; result: { groups: readonly GroupSummary[] } };
  view: { params?: Record<string, never>; result: ViewResult };
}

export type ChatMethod = keyof ChatMethods;
