/** A Chorus error as clients get it, from the writes (chatService.ts) and the reads (groupReader.ts) alike. */
import { RpcError } from './jsonRpc.js';
import { errorRules } from './protocol.js';

/** Its code, a message for people, and `data.rule`, its stable name. */
export function rpcError(code: number, message: string): RpcError {
  return new RpcError(code, message, { rule: errorRules[code] });
}
