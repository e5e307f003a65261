/**
 * The client protocol: JSON-RPC 2.0 over WebSocket, on each daemon's client
 * port. Shared by the server and the terminal client. See README "Client RPC".
 */

/** Error codes beyond JSON-RPC's own (-32602 invalid params, -32601 unknown method). */
export const RpcErrors = {
  invalidParams: -32602,
  noUser: 4001,
  noGroup: 4002,
  unknownMessage: 4003,
  ownMessage: 4004,
  alreadyLiked: 4005,
  notLiked: 4006,
  busy: 4007,
  unavailable: 4008,
} as const;

export interface MessageView {
  /** Position in the group's history, 1-based. */
  readonly n: number;
  readonly id: string;
  readonly user: string;
  readonly text: string;
  readonly likes: number;
  readonly likedBy: readonly string[];
}

export interface GroupView {
  readonly group: string;
  /** Users joined through servers in the answering daemon's current view. */
  readonly participants: readonly string[];
  /** Messages in the whole history. */
  readonly total: number;
  /** The last 10 (pushes, join) or all (history). */
  readonly messages: readonly MessageView[];
}

export interface ViewResult {
  readonly server: number;
  readonly view: readonly { readonly id: number; readonly host: string; readonly udpPort: number; readonly clientPort: number }[];
}

/** Messages shown after a join and on every change. */
export const recentMessages = 10;
